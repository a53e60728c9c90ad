//! Rule file tests: every documented error appears for its bad input, with its line and
//! column; the example files compile; overrides from the environment apply.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::*;

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-26T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn errors(text: &str) -> Vec<String> {
    match parse_rules("rules.yaml", text, now()) {
        Ok(_) => panic!("should not compile:\n{text}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

fn ok(text: &str) -> RuleSet {
    parse_rules("rules.yaml", text, now())
        .unwrap_or_else(|e| panic!("should compile:\n{text}\n{e}"))
}

/// (rule file, the exact error line it must produce)
#[test]
fn each_documented_error_names_file_line_column_rule_and_field() {
    let cases: &[(&str, &str)] = &[
        (
            "",
            "rules.yaml: the rule file is empty; it needs at least a `rules:` list",
        ),
        (
            "timezone: UTC\n",
            "rules.yaml: `rules`: no rules: add a `rules:` list (an empty file acts on nothing)",
        ),
        (
            "rules:\n  - match: { mode: preview }\n    run: Mon-Fri 08:00-19:00\n",
            "rules.yaml:2:5: rule #1 field `name`: a rule needs a `name`",
        ),
        (
            "rules:\n  - name: a\n    run: Mon-Fri 08:00-19:00\n  - name: a\n    run: Sat\n",
            "rules.yaml:4:11: rule \"a\" field `name`: duplicate rule name \"a\"; names must be unique",
        ),
        (
            "rules:\n  - name: a\n    timezone: Europe/Pariss\n    run: Mon-Fri 08:00-19:00\n",
            "rules.yaml:3:15: rule \"a\" field `timezone`: unknown time zone \"Europe/Pariss\"; did you mean Europe/Paris?",
        ),
        (
            "rules:\n  - name: a\n    run: never\n",
            "rules.yaml:3:10: rule \"a\" field `run`: the schedule \"run never\" never lets an environment run in the coming year: give the windows they may run in (such as `run: Mon-Fri 08:00-19:00`), or, to keep them stopped unless a person starts them, add `wake: never` (stop-only)",
        ),
        (
            "rules:\n  - name: a\n    stop_when_idle: 1h\n    delete_after: 10m\n",
            "rules.yaml:4:19: rule \"a\" field `delete_after`: delete_after (10m) is shorter than the grace period (30m): new environments would be deleted as soon as they may be touched",
        ),
        (
            "rules:\n  - name: previews\n    run: \"Mno-Fri 08:00-19:00\"\n",
            "rules.yaml:3:11: rule \"previews\" field `run`: unknown weekday \"Mno\" at column 1; expected Mon..Sun",
        ),
        (
            "rules:\n  - name: previews\n    run: Mon-Fri 08:00-25:00\n",
            "rules.yaml:3:24: rule \"previews\" field `run`: invalid time \"25:00\" at column 15; expected HH:MM from 00:00 to 24:00",
        ),
        (
            "rules:\n  - name: previews\n    run: Mon-Fri 08:00-19:00\n    stpo: 3h\n",
            "rules.yaml:4:5: rule \"previews\": unknown field `stpo`, expected one of",
        ),
        (
            "rules:\n  - name: a\n    run: Sat\n    wake: sometimes\n",
            "rules.yaml:4:11: rule \"a\" field `wake`: unknown wake policy \"sometimes\"; expected stopped-by-curfew, all or never",
        ),
        (
            "rules:\n  - name: a\n    match: { mode: prevew }\n    run: Sat\n",
            "rules.yaml:3:20: rule \"a\" field `match.mode`: unknown mode \"prevew\"",
        ),
        (
            "rules:\n  - name: a\n    stop_when_idle: 3hours\n",
            "rules.yaml:3:21: rule \"a\" field `stop_when_idle`: invalid duration \"3hours\"",
        ),
        (
            "rules:\n  - name: a\n    run: Sat\n    stop: Sun\n",
            "rules.yaml:3:10: rule \"a\" field `run`: give one schedule, not several: run, stop",
        ),
        (
            "rules:\n  - name: a\n    run: Sat\n    notify: [nobody]\n",
            "rules.yaml:4:14: rule \"a\" field `notify`: unknown notification target \"nobody\"; targets defined under `notify`: none",
        ),
        (
            "rules:\n  - name: a\n    match: { mode: preview }\n",
            "rules.yaml:2:5: rule \"a\" field `name`: this rule does nothing",
        ),
        (
            "protect:\n  - {}\nrules:\n  - name: a\n    run: Sat\n",
            "rules.yaml:2:5: `protect[0]`: an empty protect entry would protect every environment",
        ),
        (
            "platform:\n  qovery:\n    organization: x\n    token: abc\nrules:\n  - name: a\n    run: Sat\n",
            "rules.yaml:4:5: unknown field `token`",
        ),
        (
            "daemon:\n  listen: nowhere\nrules:\n  - name: a\n    run: Sat\n",
            "rules.yaml:2:11: `daemon.listen`: \"nowhere\" is not an address such as 127.0.0.1:9464",
        ),
        (
            "rules:\n  - name: a\n    run: \"stop=0 19 * * *\"\n",
            "rules.yaml:3:10: rule \"a\" field `run`: an event schedule (stop=…, off=…) belongs under `events`, not `run`",
        ),
        (
            "rules:\n  - name: q\n    weekdays: [MONDAY, FUNDAY]\n    start_time: \"08:00\"\n    stop_time: \"19:00\"\n",
            "rules.yaml:3:15: rule \"q\" field `weekdays`: unknown weekday \"FUNDAY\"; expected MONDAY..SUNDAY",
        ),
    ];
    for (text, want) in cases {
        let got = errors(text);
        assert!(
            got.iter().any(|e| e.starts_with(want)),
            "for:\n{text}\nwant: {want}\ngot:  {got:#?}"
        );
    }
}

/// The user: "these stay stopped unless a person starts them" is `run: never` (or
/// `stop: always`) with `wake: never`; without it, the schedule is still refused, and the
/// error says how to write either.
#[test]
fn a_schedule_that_never_runs_is_accepted_as_stop_only_with_wake_never() {
    for schedule in ["run: never", "stop: always"] {
        let stop_only = ok(&format!(
            "rules:\n  - name: parked\n    {schedule}\n    wake: never\n"
        ));
        assert_eq!(
            stop_only.rules[0].wake,
            crate::policy::Wake::Never,
            "{schedule}"
        );
        let refused = errors(&format!("rules:\n  - name: parked\n    {schedule}\n"));
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0].contains("never lets an environment run in the coming year")
                && refused[0].contains("add `wake: never` (stop-only)"),
            "{}",
            refused[0]
        );
    }
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let text = "rules:\n  - name: a\n    run: Mno\n  - name: a\n    timezone: Mars/Base\n    run: Sat\n  - match: {}\n    run: Sun\n";
    assert_eq!(errors(text).len(), 4, "{:#?}", errors(text));
}

#[test]
fn an_inline_token_is_refused_with_the_reason() {
    let got = errors(
        "platform:\n  qovery:\n    organization: x\n    token: abc\nrules:\n  - name: a\n    run: Sat\n",
    );
    assert!(
        got[0].contains("secrets are never written in the rule file"),
        "{got:?}"
    );
    assert!(
        !got[0].contains("abc"),
        "the secret itself must not be echoed: {got:?}"
    );
}

#[test]
fn unknown_fields_suggest_the_field_meant() {
    let got = errors("rules:\n  - name: a\n    run: Sat\n    stpo: 3h\n");
    assert!(got[0].ends_with("did you mean `stop`?"), "{got:?}");
}

#[tokio::test]
async fn every_example_file_compiles() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Source::new(&path, &HashMap::new())
                .load(now())
                .await
                .unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 5, "only {count} example files");
}

#[test]
fn the_checked_in_schema_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/curfew.schema.json");
    let stored = std::fs::read_to_string(path).unwrap();
    assert!(
        stored == crate::cli::schema_json(),
        "schema/curfew.schema.json is stale: run `cargo run -- schema > schema/curfew.schema.json`"
    );
}

#[test]
fn environment_variables_override_settings() {
    let text =
        "timezone: Europe/Paris\nsafety:\n  dry_run: false\nrules:\n  - name: a\n    run: Sat\n";
    let env: HashMap<String, String> = [
        ("CURFEW_SAFETY__DRY_RUN", "true"),
        ("CURFEW_SAFETY__MAX_STOPS_PER_PASS", "7"),
        ("CURFEW_DAEMON__LISTEN", "127.0.0.1:9000"),
        ("CURFEW_TIMEZONE", "Asia/Tokyo"),
        ("UNRELATED", "x"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let loaded = parse("rules.yaml", text, &env, now()).unwrap();
    assert!(loaded.rules.safety.dry_run);
    assert_eq!(loaded.rules.safety.max_stops_per_pass, 7);
    assert_eq!(loaded.rules.timezone, chrono_tz::Asia::Tokyo);
    assert_eq!(loaded.settings.listen.to_string(), "127.0.0.1:9000");
    let bad: HashMap<String, String> =
        [("CURFEW_TIMEZONE".to_string(), "Nowhere/Else".to_string())].into();
    let err = parse("rules.yaml", text, &bad, now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown time zone \"Nowhere/Else\""), "{err}");
}

fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// docs/rules.md: every setting outside `protect`, `notify` and `rules` can be overridden,
/// the platform's and the unit prices included (they were silently ignored).
#[test]
fn platform_and_price_settings_are_overridden_too() {
    let qovery =
        "platform:\n  qovery: { organization: org-from-file }\nrules:\n  - name: a\n    run: Sat\n";
    let loaded = parse(
        "rules.yaml",
        qovery,
        &vars(&[
            ("CURFEW_PLATFORM__QOVERY__ORGANIZATION", "org-from-env"),
            ("CURFEW_PLATFORM__QOVERY__TOKEN_ENV", "MY_TOKEN"),
            ("CURFEW_PLATFORM__QOVERY__MAX_CONCURRENCY", "3"),
            ("CURFEW_PLATFORM__QOVERY__TIMEOUT", "5s"),
            ("CURFEW_DEFAULTS__PRICES__VCPU_HOUR", "0.04"),
            ("CURFEW_DEFAULTS__PRICES__GIB_HOUR", "0.006"),
            ("CURFEW_DAEMON__PER_ENVIRONMENT_METRICS", "TRUE"),
        ]),
        now(),
    )
    .unwrap();
    let settings::PlatformSettings::Qovery(q) = &loaded.settings.platform else {
        panic!("{:?}", loaded.settings.platform);
    };
    assert_eq!(q.organization, "org-from-env");
    assert_eq!(q.token_env, "MY_TOKEN");
    assert_eq!(q.max_concurrency, 3);
    assert_eq!(q.timeout, std::time::Duration::from_secs(5));
    assert_eq!(loaded.rules.defaults.vcpu_hour, Some(0.04));
    assert_eq!(loaded.rules.defaults.gib_hour, Some(0.006));
    assert!(loaded.settings.per_environment_metrics);
    // `platform: sandbox` named in the file, its fleet set from the environment.
    let sandbox = "platform: sandbox\nrules:\n  - name: a\n    run: Sat\n";
    let loaded = parse(
        "rules.yaml",
        sandbox,
        &vars(&[("CURFEW_PLATFORM__SANDBOX__ENVIRONMENTS", "7")]),
        now(),
    )
    .unwrap();
    let settings::PlatformSettings::Sandbox(s) = &loaded.settings.platform else {
        panic!("{:?}", loaded.settings.platform);
    };
    assert_eq!(s.environments, 7);
}

/// The probe: with `CURFEW_ADMIN_TOKEN` set (the documented way to turn the admin
/// API on), the rule file was parsed a second time by another parser, which also refused
/// files the first one accepts. Overrides are built from the variables alone.
#[test]
fn a_file_valid_alone_stays_valid_with_any_curfew_variable() {
    let text = "rules:\n  - name: a\n    description: .nan\n    run: Sat\n";
    let env = vars(&[
        ("CURFEW_ADMIN_TOKEN", "a-token-of-twenty-chars"),
        ("CURFEW_LOG", "debug"),
        ("CURFEW_SERVER", "http://127.0.0.1:9464"),
    ]);
    assert!(Overrides::from_env(&env).is_empty());
    let loaded = parse("rules.yaml", text, &env, now()).unwrap();
    assert_eq!(loaded.warnings, Vec::<String>::new());
    let with_setting = vars(&[("CURFEW_SAFETY__DRY_RUN", "true")]);
    assert!(
        parse("rules.yaml", text, &with_setting, now())
            .unwrap()
            .rules
            .safety
            .dry_run
    );
}

#[test]
fn an_overriding_value_that_does_not_read_names_its_variable_and_setting() {
    let text = "rules:\n  - name: a\n    run: Sat\n";
    let env = vars(&[
        ("CURFEW_SAFETY__DRY_RUN", "yes please"),
        ("CURFEW_SAFETY__MAX_DELETES_PER_HOUR", "-1"),
        ("CURFEW_DAEMON__LISTEN", "everywhere"),
    ]);
    let errors: Vec<String> = parse("rules.yaml", text, &env, now())
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "rules.yaml: `safety.dry_run`: CURFEW_SAFETY__DRY_RUN: \"yes please\" is not true or false",
            "rules.yaml: `safety.max_deletes_per_hour`: CURFEW_SAFETY__MAX_DELETES_PER_HOUR: \"-1\" is not a whole number from 0 to 4294967295",
            "rules.yaml: `daemon.listen`: \"everywhere\" is not an address such as 127.0.0.1:9464 (set by CURFEW_DAEMON__LISTEN)",
        ]
    );
}

#[test]
fn a_curfew_variable_that_names_no_setting_is_warned_about_by_name() {
    let text = "daemon: { admin_token_env: CURFEW_OPS_TOKEN }\nrules:\n  - name: a\n    run: Sat\n";
    let env = vars(&[
        ("CURFEW_SAFETY__DRYRUN", "true"),
        ("CURFEW_OPS_TOKEN", "named by the file"),
    ]);
    let loaded = parse("rules.yaml", text, &env, now()).unwrap();
    assert!(!loaded.rules.safety.dry_run);
    assert_eq!(
        loaded.warnings,
        [
            "the environment variable CURFEW_SAFETY__DRYRUN names no setting and is ignored; did you mean CURFEW_SAFETY__DRY_RUN?"
        ]
    );
}

/// The slow writer: a valid prefix is on disk when the reload reads, and the
/// `protect:` section comes a moment later. The file is read once it is whole.
#[tokio::test(start_paused = true)]
async fn a_rule_file_written_slowly_in_place_is_read_whole() {
    let dir = std::env::temp_dir().join(format!("curfew-slow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("rules.yaml");
    std::fs::write(&path, "rules:\n  - name: a\n    run: Sat\n").unwrap();
    let writer = {
        let path = path.clone();
        tokio::spawn(async move {
            tokio::time::sleep(crate::files::SETTLE_PAUSE / 2).await;
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .unwrap();
            f.write_all(b"protect:\n  - project: billing\n").unwrap();
        })
    };
    let loaded = Source::new(&path, &HashMap::new())
        .load(now())
        .await
        .unwrap();
    writer.await.unwrap();
    assert_eq!(
        loaded.rules.protect.last().map(|p| p.selector.describe()),
        Some("project=billing".to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The forged line: a rule named with a newline and ESC was accepted, and printed
/// a fake `ERROR` line in `validate`'s output. Such names are refused, and every error
/// prints on one line with the name escaped.
#[test]
fn control_characters_in_names_are_refused_and_never_printed_raw() {
    let text = "rules:\n  - name: \"ok\\n2026-11-27T19:00:00Z ERROR curfew: \\x1b[31mforged\"\n    run: Sat\nnotify:\n  \"t\\tx\": { kind: webhook, url: \"https://x.example\" }\n";
    let errors = errors(text);
    assert_eq!(
        errors,
        [
            "rules.yaml:5:11: `notify.t\\tx`: the name holds the control character U+0009; names appear in logs, metrics and terminals",
            "rules.yaml:2:11: rule \"ok\\n2026-11-27T19:00:00Z ERROR curfew: \\u{1b}[31mforged\" field `name`: the name holds the control character U+000A; names appear in logs, metrics and terminals",
        ]
    );
    for e in &errors {
        assert!(!e.contains('\n') && !e.contains('\u{1b}'), "{e:?}");
    }
}

#[test]
fn production_is_protected_unless_said_otherwise() {
    let rules = ok("rules:\n  - name: a\n    run: Sat\n");
    assert!(
        rules.protect[0]
            .selector
            .modes
            .contains(&crate::platform::Mode::Production)
    );
    let open = ok("safety:\n  protect_production: false\nrules:\n  - name: a\n    run: Sat\n");
    assert!(open.protect.is_empty());
}

#[test]
fn deletes_are_for_previews_unless_a_rule_allows_more() {
    let rules = ok(
        "rules:\n  - name: a\n    delete_after: 7d\n  - name: b\n    delete_after: 7d\n    allow_delete: [preview, development]\n",
    );
    use crate::platform::Mode;
    assert_eq!(rules.rules[0].allow_delete, [Mode::Preview]);
    assert_eq!(
        rules.rules[1].allow_delete,
        [Mode::Preview, Mode::Development]
    );
}

#[test]
fn qovery_deployment_rule_fields_mean_a_run_window() {
    let rules = ok(concat!(
        "rules:\n  - name: q\n    mode: PREVIEW\n    wildcard: \"feat-*\"\n    timezone: Europe/Paris\n",
        "    start_time: \"1970-01-01T08:00:00.000Z\"\n    stop_time: \"1970-01-01T19:00:00.000Z\"\n",
        "    weekdays: [MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY]\n",
    ));
    let rule = &rules.rules[0];
    assert_eq!(
        rule.schedule.as_ref().unwrap().describe(),
        "run Mon-Fri 08:00-19:00 Europe/Paris"
    );
    assert_eq!(rule.selector.describe(), "mode=preview environment=feat-*");
}

#[test]
fn kube_green_fields_and_custodian_tags_become_event_schedules() {
    let rules = ok(concat!(
        "rules:\n  - name: kg\n    events: { weekdays: \"1-5\", sleepAt: \"20:00\", wakeUpAt: \"08:00\", timeZone: Europe/Rome }\n",
        "  - name: c7n\n    events: \"off=(M-F,19);on=(M-F,7);tz=pt\"\n",
    ));
    assert_eq!(
        rules.rules[0].schedule.as_ref().unwrap().describe(),
        "events stop=00 20 * * 1-5; start=00 08 * * 1-5; tz=Europe/Rome"
    );
    assert!(
        rules.rules[1]
            .schedule
            .as_ref()
            .unwrap()
            .describe()
            .contains("tz=America/Los_Angeles")
    );
    // A SleepInfo without timeZone means UTC in kube-green, whatever the rule's zone.
    let no_zone = ok(
        "timezone: Europe/Paris\nrules:\n  - name: kg\n    events: { weekdays: \"1-5\", sleepAt: \"20:00\" }\n",
    );
    assert!(
        no_zone.rules[0]
            .schedule
            .as_ref()
            .unwrap()
            .describe()
            .ends_with("tz=UTC")
    );
}

#[test]
fn stop_windows_and_holidays_keep_environments_stopped() {
    let rules = ok(
        "rules:\n  - name: s\n    timezone: Europe/Paris\n    stop: Sat-Sun\n    holidays: [2026-12-25]\n",
    );
    let s = rules.rules[0].schedule.as_ref().unwrap();
    let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc);
    assert!(s.is_active(at("2026-12-24T12:00:00+01:00"))); // Thursday
    assert!(!s.is_active(at("2026-12-25T12:00:00+01:00"))); // Friday, a holiday
    assert!(!s.is_active(at("2026-12-26T12:00:00+01:00"))); // Saturday
    assert_eq!(
        s.next_change(at("2026-12-24T12:00:00+01:00")),
        Some(at("2026-12-25T00:00:00+01:00"))
    );
    assert_eq!(
        s.next_change(at("2026-12-25T12:00:00+01:00")),
        Some(at("2026-12-28T00:00:00+01:00"))
    );
}

#[test]
fn wake_on_request_is_off_unless_a_rule_says_so() {
    let rules = ok(
        "rules:\n  - name: a\n    stop_when_idle: 1h\n    wake_on_request: true\n  - name: b\n    stop_when_idle: 1h\n",
    );
    assert!(rules.rule("a").is_some_and(|r| r.wake_on_request));
    assert!(rules.rule("b").is_some_and(|r| !r.wake_on_request));
}

#[test]
fn a_rules_patches_are_checked_at_load_with_where_they_are() {
    let rules = ok(
        "rules:\n  - name: a\n    stop_when_idle: 1h\n    release_load_balancers: true\n    patches:\n      - target: apps/v1/Deployment\n        patch: {spec: {template: {spec: {nodeSelector: {pool: spot}}}}}\n",
    );
    let a = rules.rule("a").unwrap();
    assert!(a.extras.release_load_balancers);
    assert_eq!(a.extras.patches[0].target.plural, "deployments");
    assert_eq!(
        a.extras.patches[0].patch["spec"]["template"]["spec"]["nodeSelector"]["pool"],
        "spot"
    );
    let e = errors(
        "rules:\n  - name: a\n    stop_when_idle: 1h\n    release_load_balancers: true\n    patches:\n      - target: Deployment\n        patch: {spec: {paused: true}}\n      - target: apps/v1/Deployment\n        patch: {metadata: {labels: {a: b}}}\n      - target: v1/Service\n        patch: {spec: {type: ClusterIP}}\n",
    );
    assert_eq!(e.len(), 3, "{e:?}");
    assert!(
        e[0].contains("rules.yaml:6:")
            && e[0].contains("patches[0]")
            && e[0].contains("GROUP/VERSION/KIND"),
        "{e:?}"
    );
    assert!(
        e[1].contains("patches[1]") && e[1].contains("`metadata`"),
        "{e:?}"
    );
    assert!(
        e[2].contains("patches[2]") && e[2].contains("release_load_balancers"),
        "{e:?}"
    );
}
