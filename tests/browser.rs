//! The status page as a person uses it, in a real browser: Debian's headless Chromium
//! driven through WebDriver (Debian's chromedriver) by fantoccini. The daemon is the real
//! `curfew run`, against a sandbox served by this test (so the test sees what the
//! platform was asked). Nothing downloads a browser; `.ci/run` installs both packages.
//!
//! `cargo test --test browser -- --ignored` (with `chromium` and `chromedriver` on the
//! PATH, or `CHROMIUM_BIN` and `CHROMEDRIVER_BIN`). With `CURFEW_SCREENSHOTS=docs/page`
//! it also saves the screenshots the README shows.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use common::{Killed, free_port};
use curfew::clock::ManualClock;
use curfew::platform::Mode;
use curfew::sandbox::{Sandbox, SandboxEnvironment, SandboxOptions};
use curfew::ui::links::Link;
use curfew::ui::{LinkAction, LinkKeys, Signer};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const CURFEW: &str = env!("CARGO_BIN_EXE_curfew");
const TOKEN: &str = "alice:alice-0123456789abcdef";
const LINK_KEY: &str = "0123456789abcdef0123456789abcdef-browser";
const XSS: &str = "<img src=x onerror=alert(1)>";
/// Wednesday 25 November 2026, 10:00 in Paris: inside office hours, so the first pass
/// stops nothing and the page shows the states the sandbox reports.
const START: &str = "2026-11-25T10:00:00+01:00";

fn tool(var: &str, name: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| name.to_string())
}

/// The daemon (`curfew run`) on the sandbox, and the sandbox itself.
struct Site {
    sandbox: Sandbox,
    running: curfew::sandbox::RunningSandbox,
    _daemon: Killed,
    base: String,
    /// The public port: the waiting page.
    public: String,
    dir: std::path::PathBuf,
}

/// The daemon and its sandbox; `tag` keeps the files of the tests that run at once apart.
async fn site(tag: &str) -> Site {
    let start: DateTime<Utc> = START.parse().unwrap();
    let sandbox = Sandbox::new(
        SandboxOptions {
            projects: 6,
            environments: 48,
            seed: 7,
            token: "sandbox-token".into(),
            ..SandboxOptions::default()
        },
        Arc::new(ManualClock::new(start)),
    );
    let victim = preview(&sandbox, "RUNNING", 1);
    assert!(sandbox.rename(&victim.id, XSS));
    let running = sandbox
        .clone()
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let (port, public_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let public = format!("http://127.0.0.1:{public_port}");
    let dir = std::env::temp_dir().join(format!("curfew-browser-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("curfew.yaml");
    std::fs::write(
        &config,
        format!(
            "timezone: Europe/Paris\ncurrency: EUR\nplatform:\n  qovery:\n    organization: {org}\n    api_url: {url}\n    token_env: SANDBOX_TOKEN\n\
             daemon:\n  listen: 127.0.0.1:{port}\n  public_listen: 127.0.0.1:{public_port}\n  ledger: {ledger}\n  resync: 60s\n  page: login\n  public_url: {base}\n\
             defaults:\n  hourly_cost: 0.40\n\
             rules:\n  - name: previews\n    match: {{ mode: preview }}\n    run: Mon-Fri 08:00-19:00\n    delete_after: 30d\n    wake_on_request: true\n",
            org = running.organization_id,
            url = running.url,
            ledger = dir.join("ledger.db").display(),
        ),
    )
    .unwrap();
    let daemon = Command::new(CURFEW)
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--clock-start",
            START,
        ])
        .env("SANDBOX_TOKEN", "sandbox-token")
        .env("CURFEW_ADMIN_TOKEN", TOKEN)
        .env("CURFEW_LINK_KEY", LINK_KEY)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("curfew run");
    let daemon = Killed(daemon);
    let ready = format!("{base}/readyz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ok = reqwest::get(&ready).await.is_ok_and(|r| r.status() == 200);
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the daemon never became ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Site {
        sandbox,
        running,
        _daemon: daemon,
        base,
        public,
        dir,
    }
}

/// The `nth` preview environment in a state (`RUNNING` means `DEPLOYED`).
fn preview(sandbox: &Sandbox, state: &str, nth: usize) -> SandboxEnvironment {
    let want = if state == "RUNNING" {
        "DEPLOYED"
    } else {
        state
    };
    sandbox
        .environments()
        .into_iter()
        .filter(|e| e.mode == Mode::Preview && e.state == want)
        .nth(nth)
        .unwrap_or_else(|| panic!("a {state} preview in the sandbox"))
}

/// The word the page shows for a sandbox state.
fn shown_state(qovery: &str) -> &'static str {
    match qovery {
        "DEPLOYED" | "RUNNING" => "running",
        "STOPPED" | "CANCELED" => "stopped",
        "DEPLOYING" | "DEPLOYMENT_QUEUED" | "RESTARTING" | "RESTART_QUEUED" | "BUILDING" => {
            "starting"
        }
        "STOPPING" | "STOP_QUEUED" => "stopping",
        "DELETING" | "DELETE_QUEUED" | "DELETED" => "deleting",
        _ => "error",
    }
}

/// chromedriver on a free port, and a headless Chromium session through it.
async fn browser(tag: &str) -> (Killed, Client, std::path::PathBuf) {
    let port = free_port();
    let driver = Command::new(tool("CHROMEDRIVER_BIN", "chromedriver"))
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver (Debian's chromium-driver)");
    let driver = Killed(driver);
    let profile =
        std::env::temp_dir().join(format!("curfew-chromium-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let caps = json!({
        "goog:chromeOptions": {
            "binary": tool("CHROMIUM_BIN", "/usr/bin/chromium"),
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--window-size=1280,900",
                format!("--user-data-dir={}", profile.display()),
            ],
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    };
    (driver, client, profile)
}

/// Removes what `css` finds from this page: waiting for it afterwards finds the next
/// page's only.
async fn forget(c: &Client, css: &str) {
    c.execute(
        "document.querySelectorAll(arguments[0]).forEach(e => e.remove());",
        vec![json!(css)],
    )
    .await
    .unwrap();
}

/// Clicks `button` and waits for the next page to show `then`.
async fn click_then(c: &Client, button: &str, then: &str) {
    forget(c, then).await;
    let b = c.find(Locator::Css(button)).await.unwrap();
    b.click().await.unwrap();
    c.wait().for_element(Locator::Css(then)).await.unwrap();
}

/// Runs `script`, which submits a form, and waits for the next page to show `then`.
async fn submit_then(c: &Client, script: &str, args: Vec<serde_json::Value>, then: &str) {
    forget(c, then).await;
    c.execute(script, args).await.unwrap();
    c.wait().for_element(Locator::Css(then)).await.unwrap();
}

async fn text_of(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Saves a screenshot for the docs when `CURFEW_SCREENSHOTS` names a folder.
async fn screenshot(c: &Client, name: &str) {
    if let Ok(dir) = std::env::var("CURFEW_SCREENSHOTS") {
        std::fs::create_dir_all(&dir).unwrap();
        let png = c.screenshot().await.unwrap();
        std::fs::write(std::path::Path::new(&dir).join(name), png).unwrap();
    }
}

fn signer(base: &str) -> Signer {
    Signer::new(
        LinkKeys::new(vec![LINK_KEY.as_bytes().to_vec()]).unwrap(),
        base,
        TimeDelta::hours(72),
        TimeDelta::days(7),
    )
}

fn deploys(sandbox: &Sandbox, id: &str) -> u32 {
    sandbox.requests().deploys.get(id).map_or(0, |c| c.calls)
}

#[tokio::test]
#[ignore = "needs chromium and chromedriver"]
async fn a_person_reads_the_page_signs_in_and_uses_a_link() {
    let site = site("page").await;
    let (_driver, c, profile) = browser("page").await;
    let base = &site.base;

    // The login flow: the page asks for it, the token signs in.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.current_url().await.unwrap().path().starts_with("/login"));
    c.find(Locator::Css("#token"))
        .await
        .unwrap()
        .send_keys(TOKEN.split_once(':').unwrap().1)
        .await
        .unwrap();
    click_then(&c, "form[action='/login'] button", "table#fleet").await;
    assert_eq!(text_of(&c, ".who strong").await, "alice");

    // The fleet lists every environment with the state the sandbox reports.
    let rows = c
        .find_all(Locator::Css("table#fleet tbody tr"))
        .await
        .unwrap();
    let environments = site.sandbox.environments();
    assert_eq!(rows.len(), environments.len());
    for env in &environments {
        let link = c
            .find(Locator::Css(&format!("a[href='/environments/{}']", env.id)))
            .await
            .unwrap_or_else(|_| panic!("{} is listed", env.name));
        assert_eq!(
            link.text().await.unwrap(),
            env.name,
            "names are shown as text"
        );
        let state = c
            .find(Locator::XPath(&format!(
                "//a[@href='/environments/{}']/ancestor::tr//span[contains(@class,'state')]",
                env.id
            )))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(state, shown_state(&env.state), "{}", env.name);
    }
    // The hostile name is text: no image was made of it, no script ran.
    let images: i64 = c
        .execute(
            "return document.querySelectorAll('main img').length",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap();
    assert_eq!(images, 0);
    assert!(c.get_alert_text().await.is_err(), "no alert is open");
    screenshot(&c, "fleet.png").await;

    // Readable at 400 px wide: the page itself does not scroll sideways (the table scrolls
    // in its own box).
    c.set_window_size(400, 900).await.unwrap();
    let overflow = c
        .execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await
        .unwrap()
        .as_i64()
        .unwrap();
    assert!(overflow <= 0, "{overflow} px wider than a 400 px window");
    c.set_window_size(1280, 900).await.unwrap();

    // An environment page shows its timeline: 21 days as rows.
    let stopped = preview(&site.sandbox, "STOPPED", 0);
    c.goto(&format!("{base}/environments/{}", stopped.id))
        .await
        .unwrap();
    let days = c
        .find_all(Locator::Css("svg.timeline g.tl-day"))
        .await
        .unwrap();
    assert_eq!(days.len(), 21);
    assert_eq!(text_of(&c, "h1").await, stopped.name);

    // A POST without the CSRF token is refused, and nothing is asked of the platform.
    submit_then(
        &c,
        "const f = document.querySelector(\"form[action$='/actions']\"); \
         f.querySelector(\"input[name='csrf']\").remove(); f.submit();",
        vec![],
        "p.message",
    )
    .await;
    assert_eq!(text_of(&c, "h1").await, "Refused");
    assert_eq!(deploys(&site.sandbox, &stopped.id), 0);

    // A signed link: its page asks, confirming wakes the stopped environment.
    let s = signer(base);
    // The daemon's clock started at START: links are made and expire in its time.
    let now: DateTime<Utc> = START.parse().unwrap();
    let token = s.sign(&s.link(&stopped.id, LinkAction::Wake, "team-slack", now));
    let url = s.url(&token);
    c.goto(&url).await.unwrap();
    assert!(text_of(&c, "h1").await.starts_with("wake now:"));
    assert_eq!(
        deploys(&site.sandbox, &stopped.id),
        0,
        "opening it did nothing"
    );
    click_then(&c, "form button", "p.message").await;
    assert!(
        text_of(&c, "h1").await.starts_with("Done"),
        "{}",
        text_of(&c, "main").await
    );
    assert_eq!(
        deploys(&site.sandbox, &stopped.id),
        1,
        "the sandbox saw the start"
    );
    // Its page now tells the story: kept up until 19:00, woken by the link.
    c.goto(&format!("{base}/environments/{}", stopped.id))
        .await
        .unwrap();
    assert!(
        text_of(&c, "main")
            .await
            .contains("wake by link sent to team-slack")
    );
    c.set_window_size(1280, 1560).await.unwrap();
    screenshot(&c, "environment.png").await;
    c.set_window_size(1280, 900).await.unwrap();

    // Used, expired and changed links are refused with a page that says so; nothing moves.
    let other = preview(&site.sandbox, "STOPPED", 1);
    let expired = Link {
        expires: (now - TimeDelta::minutes(1)).timestamp(),
        ..s.link(&other.id, LinkAction::Wake, "team-slack", now)
    };
    let fresh = s.sign(&s.link(&other.id, LinkAction::Wake, "team-slack", now));
    let mut changed = fresh.into_bytes();
    let i = changed.len() - 2;
    changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
    let refused = [
        (url.clone(), "used already"),
        (s.url(&s.sign(&expired)), "expired"),
        (
            s.url(&String::from_utf8(changed).unwrap()),
            "signature does not match",
        ),
    ];
    for (link, why) in refused {
        c.goto(&link).await.unwrap();
        assert!(text_of(&c, "h1").await.starts_with("This link"), "{why}");
        assert!(text_of(&c, "main").await.contains(why), "{why}");
        // A page that refuses offers nothing to confirm.
        assert!(
            c.find(Locator::Css("form[method='post']")).await.is_err(),
            "{why}"
        );
        // Confirming it anyway (a form made by hand) is refused the same way.
        submit_then(
            &c,
            "const f = document.createElement('form'); f.method = 'post'; \
             f.action = arguments[0]; document.body.appendChild(f); f.submit();",
            vec![json!(link)],
            "p.message",
        )
        .await;
        assert!(text_of(&c, "h1").await.starts_with("This link"), "{why}");
        assert!(text_of(&c, "main").await.contains(why), "{why}");
    }
    assert_eq!(deploys(&site.sandbox, &stopped.id), 1);
    assert_eq!(deploys(&site.sandbox, &other.id), 0);

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_dir_all(&site.dir);
}

/// Wake on request as a reviewer sees it: a stopped preview opened on the public port
/// shows its waiting page and is started once; once the sandbox says it is up, the page
/// takes the browser on to the preview's own URL, the app.
#[tokio::test]
#[ignore = "needs chromium and chromedriver"]
async fn a_sleeping_preview_shows_its_waiting_page_then_the_app() {
    let site = site("wake").await;
    let (_driver, c, profile) = browser("wake").await;
    let env = preview(&site.sandbox, "STOPPED", 0);

    c.goto(&format!("{}/wake/{}", site.public, env.name))
        .await
        .unwrap();
    assert_eq!(
        text_of(&c, "h1").await,
        format!("{} is waking up, about 2 minutes", env.name)
    );
    let refresh = c
        .find(Locator::Css("meta[http-equiv='refresh']"))
        .await
        .unwrap();
    assert_eq!(refresh.attr("content").await.unwrap().as_deref(), Some("5"));
    screenshot(&c, "waiting.png").await;
    assert_eq!(
        deploys(&site.sandbox, &env.id),
        1,
        "the sandbox saw one start"
    );

    // The sandbox reports it up: the page's next look finds it serving and redirects.
    assert!(site.sandbox.set_state(&env.id, "DEPLOYED"));
    let app = c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_url(&reqwest::Url::parse(&format!("{}/app/{}/", site.running.url, env.id)).unwrap())
        .await;
    assert!(
        app.is_ok(),
        "the browser stayed on {}",
        c.current_url().await.unwrap()
    );
    assert_eq!(text_of(&c, "body").await, format!("app of {}", env.name));
    assert_eq!(
        deploys(&site.sandbox, &env.id),
        1,
        "refreshing started nothing more"
    );

    c.close().await.unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_dir_all(&site.dir);
}
