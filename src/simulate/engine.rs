//! The simulated passes: the daemon's pass (decide, gate under the safety limits, act,
//! record) over the environments whose decision may have changed, at the instants it may
//! have.
//!
//! A decision says when it could change next (`next_check`), so an environment is decided
//! again only then; after an action it is decided again at once, as the action left it,
//! which says when that changes (an idle stop after a morning start). Decisions the caps or
//! a delete's second pass hold back wait, unchanged, for the next pass: one resync later,
//! or earlier if something else happens first. That is when the daemon passes too.
//!
//! A delete held back by `max_deletes_per_hour` is held back again on every pass until the
//! hour frees one (by then the fleet may have hundreds waiting): such decisions are parked
//! and counted as held back, not planned again on each of those passes. Likewise the
//! stops and starts `max_stops_per_pass` holds back: a pass plans only as many of them as
//! it may carry out, oldest due first; the others would be held back again behind these.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, TimeDelta, Utc};

use super::account::{Account, Status, Tally};
use super::{
    BUSIEST, Busiest, DayRow, EnvironmentOutcome, HorizonSavings, Moment, Options, ProjectedDelete,
    Projection, RuleProjection, Totals, Untouched,
};
use crate::platform::{EnvState, Environment};
use crate::policy::RuleSet;
use crate::policy::caps::{self, Cap, DeleteConfirmations, Gate};
use crate::policy::{self, Action, Cause, Decision, LedgerView, Step};

/// One action the simulation takes.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedAction {
    pub at: DateTime<Utc>,
    pub id: Arc<str>,
    pub environment: Arc<str>,
    pub rule: Arc<str>,
    pub action: Action,
    pub cause: Option<Cause>,
}

/// A decision whose actions are not done yet, and its environment: boxed, since passes
/// move thousands of them around while caps hold them back.
struct Waiting {
    env: u32,
    decision: Box<Decision>,
}

impl std::borrow::Borrow<Decision> for Waiting {
    fn borrow(&self) -> &Decision {
        &self.decision
    }
}

/// One environment's actions, in order.
type Timeline = Vec<(DateTime<Utc>, Action)>;

/// One environment's place in the simulation.
struct Slot {
    /// The rule that matched it (its index); `None` when it is untouched.
    rule: Option<usize>,
    per_hour: f64,
    status: Status,
    /// Since when it has been in `status`.
    since: DateTime<Utc>,
    /// Seconds spent running so far.
    running: i64,
    /// When it is to be decided again (the queue's entry for it that counts).
    scheduled: Option<DateTime<Utc>>,
}

pub(super) struct Simulation<'a> {
    rules: &'a RuleSet,
    options: &'a Options,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The listing, borrowed: what the simulation changed of each environment is in `envs`.
    listing: &'a [Environment],
    envs: Vec<Sim>,
    slots: Vec<Slot>,
    view: LedgerView,
    /// Instants at which environments are to be decided again, earliest first; an entry
    /// whose slot says otherwise is stale.
    queue: BinaryHeap<Reverse<(DateTime<Utc>, u32)>>,
    /// Decisions with actions not done yet (held back, or due after an action).
    pending: Vec<Waiting>,
    /// Decisions whose one action is a confirmed delete that `max_deletes_per_hour` held
    /// back, by environment: planned again only once the hour frees a delete (until then
    /// each pass would hold them back again, which is all it does with them).
    parked: BTreeMap<u32, Waiting>,
    /// Decisions whose one action is a stop or start that `max_stops_per_pass` held back,
    /// oldest due first (the order the plan takes them in).
    held: VecDeque<Waiting>,
    /// No two environments share an id (as platforms list them), so a delete's first
    /// sighting is its environment's alone.
    unique_ids: bool,
    confirmations: DeleteConfirmations,
    /// Deletes done, for `max_deletes_per_hour`.
    deletes_done: VecDeque<DateTime<Utc>>,
    account: Account,
    rule_index: HashMap<&'a str, usize>,
    busiest: Busiest,
    untouched: Vec<Untouched>,
    deletes: Vec<ProjectedDelete>,
    /// Each environment's actions, when asked for.
    actions: Option<Vec<Timeline>>,
    passes: u32,
    /// What the actions held back in the last pass wait for.
    wait: Wait,
}

/// What the actions held back in a pass wait for: the next pass then comes one resync
/// later, or when the hour's deletes allow one again (the passes between would hold it
/// back again), or with the next change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wait {
    Nothing,
    Hour,
    Resync,
}

/// How many environments are decided at once: those the simulation changed are decided as
/// copies of the listing's, made a batch at a time, never a copy of the whole fleet.
const BATCH: usize = 512;

/// One environment as the simulation has it: its place in the listing (borrowed, never
/// copied) and what the simulated actions changed of it, as [`policy::act_on`] changes an
/// environment.
#[derive(Debug, Clone, Copy)]
struct Sim {
    /// Its index in the listing.
    at: u32,
    state: EnvState,
    /// An action changed its state: the platform's word for the old one is gone.
    acted: bool,
}

impl Sim {
    /// [`policy::act_on`] on this environment: false when `action` removes it.
    fn act(&mut self, action: Action) -> bool {
        self.state = match action {
            Action::Delete => return false,
            Action::Stop => EnvState::Stopped,
            Action::Start => EnvState::Running,
            Action::None | Action::Warn => return true,
        };
        self.acted = true;
        true
    }

    /// The environment as the platform will have it once what it is doing now is done: a
    /// deploy or a stop under way finishes; one being deleted is gone (`None`).
    fn settled(mut self) -> Option<Sim> {
        let action = match self.state {
            EnvState::Starting => Action::Start,
            EnvState::Stopping => Action::Stop,
            EnvState::Deleting => Action::Delete,
            _ => return Some(self),
        };
        self.act(action).then_some(self)
    }

    /// The environment `decide` sees: the listing's own when no action changed it, else a
    /// copy as the actions left it.
    fn env<'e>(&self, listing: &'e [Environment]) -> Cow<'e, Environment> {
        let env = &listing[self.at as usize];
        if !self.acted {
            return Cow::Borrowed(env);
        }
        let mut changed = env.clone();
        changed.state = self.state;
        changed.platform_state = None;
        Cow::Owned(changed)
    }
}

/// Decides for `which` of `sims` at `now`, a batch at a time, handing each decision to `each`
/// with the environment's index.
fn decide_batches(
    rules: &RuleSet,
    listing: &[Environment],
    sims: &[Sim],
    which: &[u32],
    view: &LedgerView,
    now: DateTime<Utc>,
    mut each: impl FnMut(u32, &Environment, Decision),
) {
    for batch in which.chunks(BATCH) {
        let envs: Vec<Cow<'_, Environment>> = batch
            .iter()
            .map(|i| sims[*i as usize].env(listing))
            .collect();
        let decisions = policy::decide_iter(rules, envs.iter().map(|e| &**e), true, view, now);
        for ((i, env), d) in batch.iter().zip(&envs).zip(decisions) {
            each(*i, env, d);
        }
    }
}

impl<'a> Simulation<'a> {
    /// The simulation of `listing` as the actions `done` (each with its environment's index
    /// in the listing) left it, with the ledger's `view` of it.
    pub fn new(
        rules: &'a RuleSet,
        listing: &'a [Environment],
        done: &[(usize, Action)],
        mut view: LedgerView,
        options: &'a Options,
    ) -> Simulation<'a> {
        let from = options.from;
        let to = super::days_after(rules.timezone, from, options.days);
        let mut all: Vec<(Sim, bool)> = (0..listing.len() as u32)
            .zip(listing)
            .map(|(at, e)| {
                let sim = Sim {
                    at,
                    state: e.state,
                    acted: false,
                };
                (sim, true)
            })
            .collect();
        for (index, action) in done {
            if let Some((sim, present)) = all.get_mut(*index) {
                *present = sim.act(*action);
            }
        }
        let mut envs: Vec<Sim> = all
            .into_iter()
            .filter(|(_, present)| *present)
            .filter_map(|(sim, _)| sim.settled())
            .collect();
        envs.shrink_to_fit();
        for sim in &envs {
            view.observe_one(&sim.env(listing), from);
        }
        let slots = envs
            .iter()
            .map(|e| Slot {
                rule: None,
                per_hour: 0.0,
                status: if e.state == EnvState::Stopped {
                    Status::Stopped
                } else {
                    Status::Running
                },
                since: from,
                running: 0,
                scheduled: None,
            })
            .collect();
        let marks: Vec<DateTime<Utc>> = options
            .horizons
            .iter()
            .map(|d| super::days_after(rules.timezone, from, *d).min(to))
            .collect();
        let unique_ids = envs
            .iter()
            .map(|e| &*listing[e.at as usize].id)
            .collect::<HashSet<_>>()
            .len()
            == envs.len();
        Simulation {
            rules,
            options,
            from,
            to,
            actions: options
                .per_environment
                .then(|| vec![Vec::new(); envs.len()]),
            listing,
            envs,
            slots,
            view,
            queue: BinaryHeap::new(),
            pending: Vec::new(),
            parked: BTreeMap::new(),
            held: VecDeque::new(),
            unique_ids,
            confirmations: DeleteConfirmations::new(options.resync),
            deletes_done: VecDeque::new(),
            account: Account::new(rules.rules.len(), from, to, rules.timezone, &marks),
            rule_index: rules
                .rules
                .iter()
                .enumerate()
                .map(|(i, r)| (&*r.name, i))
                .collect(),
            busiest: Busiest {
                max_stops_per_pass: rules.safety.max_stops_per_pass,
                max_deletes_per_hour: rules.safety.max_deletes_per_hour,
                ..Busiest::default()
            },
            untouched: Vec::new(),
            deletes: Vec::new(),
            passes: 0,
            wait: Wait::Nothing,
        }
    }

    /// Every pass from the start to the horizon's end.
    pub fn run(mut self, mut on_action: impl FnMut(&super::SimulatedAction)) -> Projection {
        self.passes_until_end(&mut on_action, None);
        self.finish()
    }

    /// [`Simulation::run`], given up (`None`) when `cancel` is set before the end (checked
    /// before each pass: the daemon's next pass asks it to make way).
    pub fn run_unless(mut self, cancel: &AtomicBool) -> Option<Projection> {
        self.passes_until_end(&mut |_| {}, Some(cancel))
            .then(|| self.finish())
    }

    /// The passes from the start to the horizon's end; false when `cancel` stopped them.
    fn passes_until_end(
        &mut self,
        on_action: &mut impl FnMut(&super::SimulatedAction),
        cancel: Option<&AtomicBool>,
    ) -> bool {
        let mut now = self.from;
        let mut due: Vec<u32> = (0..self.envs.len() as u32).collect();
        self.classify(&due);
        loop {
            if cancel.is_some_and(|c| c.load(Ordering::Acquire)) {
                return false;
            }
            self.passes += 1;
            self.pass(now, &due, on_action);
            match self.next_instant(now) {
                Some(next) if next < self.to => now = next,
                _ => return true,
            }
            due = self.pop_due(now);
        }
    }

    /// Sorts the environments out on the first pass: the rule that matches each, its cost,
    /// and the untouched ones (protected or matched by no rule; that never changes).
    fn classify(&mut self, all: &[u32]) {
        let hours = (self.to - self.from).num_seconds() as f64 / 3600.0;
        let (rules, view) = (self.rules, &self.view);
        let (slots, untouched, rule_index) =
            (&mut self.slots, &mut self.untouched, &self.rule_index);
        decide_batches(
            rules,
            self.listing,
            &self.envs,
            all,
            view,
            self.from,
            |i, env, d| {
                let slot = &mut slots[i as usize];
                slot.rule = d.rule.as_deref().and_then(|r| rule_index.get(r).copied());
                if slot.rule.is_some() {
                    slot.per_hour = d.hourly_cost.unwrap_or(0.0);
                    return;
                }
                let hourly_cost = env.hourly_cost.or(rules.defaults.hourly_cost);
                let running = slot.status == Status::Running;
                untouched.push(Untouched {
                    id: env.id.clone(),
                    environment: env.name.clone(),
                    project: env.project.clone(),
                    protected: policy::protection(rules, env, view.get(&env.id)).is_some(),
                    reason: d.reason.clone(),
                    state: env.state,
                    hourly_cost,
                    cost: if running {
                        hourly_cost.unwrap_or(0.0) * hours
                    } else {
                        0.0
                    },
                });
            },
        );
    }

    /// One pass at `now`: decide for `due`, gate every waiting action under the limits,
    /// carry out what goes ahead, and decide again for what it changed.
    fn pass(
        &mut self,
        now: DateTime<Utc>,
        due: &[u32],
        on_action: &mut impl FnMut(&super::SimulatedAction),
    ) {
        let deletes_last_hour = self.deletes_last_hour(now);
        let hour_full = deletes_last_hour >= i64::from(self.rules.safety.max_deletes_per_hour);
        let waiting = self.gather(now, due, hour_full);
        // The parked and held decisions not planned, as the plan would gate them again:
        // each held back.
        self.wait = if !self.held.is_empty() {
            Wait::Resync
        } else if !self.parked.is_empty() {
            Wait::Hour
        } else {
            Wait::Nothing
        };
        let confirmations = &mut self.confirmations;
        let steps = caps::plan(
            &waiting,
            &self.rules.safety,
            deletes_last_hour,
            true,
            |id| confirmations.confirmed(id, now),
        );
        let mut acted = vec![false; waiting.len()];
        let mut capped = vec![None; waiting.len()];
        let mut moment = Moment {
            at: now,
            stops: 0,
            starts: 0,
            deletes: 0,
            held_back: (self.parked.len() + self.held.len()) as u32,
        };
        for step in &steps {
            match step.gate {
                Gate::Go | Gate::Record => {
                    let Some(d) = step.step(&waiting) else {
                        continue;
                    };
                    let own = (!step.delete_step).then(|| &*waiting[step.index].decision);
                    self.carry_out(waiting[step.index].env, &d, own, now, on_action);
                    acted[step.index] = true;
                    match d.action {
                        Action::Stop => moment.stops += 1,
                        Action::Start => moment.starts += 1,
                        Action::Delete => moment.deletes += 1,
                        _ => {}
                    }
                }
                Gate::Capped(cap) => {
                    moment.held_back += 1;
                    match cap {
                        Cap::MaxStopsPerPass => self.wait = Wait::Resync,
                        Cap::MaxDeletesPerHour => self.wait = self.wait.max(Wait::Hour),
                    }
                    capped[step.index] = Some(cap);
                }
                Gate::Confirming | Gate::DryRun | Gate::Partial => {}
            }
        }
        self.forget_confirmations(&waiting);
        self.note_moment(moment);
        self.after_pass(now, waiting, &acted, &capped);
    }

    /// The decisions a pass gates: those still waiting, except the environments due (they
    /// are decided again now, and the new decision replaces the one that waited), and the
    /// new decisions of these; the parked ones too once the hour frees a delete.
    fn gather(&mut self, now: DateTime<Utc>, due: &[u32], hour_full: bool) -> Vec<Waiting> {
        let due: Vec<u32> = due
            .iter()
            .copied()
            .filter(|i| self.slots[*i as usize].rule.is_some())
            .collect();
        let mut sorted = due.clone();
        sorted.sort_unstable();
        let mut waiting = std::mem::take(&mut self.pending);
        waiting.retain(|w| sorted.binary_search(&w.env).is_err());
        for i in &sorted {
            self.parked.remove(i);
        }
        if !hour_full {
            waiting.extend(std::mem::take(&mut self.parked).into_values());
        }
        self.held.retain(|w| sorted.binary_search(&w.env).is_err());
        let stops = self.rules.safety.max_stops_per_pass as usize;
        waiting.extend(self.held.drain(..stops.min(self.held.len())));
        waiting.extend(self.decide(now, &due));
        waiting
    }

    /// Forgets the first sightings of deletes no longer due (neither waiting nor parked),
    /// as the daemon's pass does. The plan noted every waiting one and the parked ones were
    /// kept, so when the counts agree (and ids are unique) nothing left.
    fn forget_confirmations(&mut self, waiting: &[Waiting]) {
        let due: HashSet<&str> = waiting
            .iter()
            .filter(|w| w.decision.delete_due())
            .map(|w| &*w.decision.environment_id)
            .collect();
        if self.unique_ids && self.confirmations.len() == due.len() + self.parked.len() {
            return;
        }
        let parked: HashSet<&str> = self
            .parked
            .values()
            .map(|w| &*w.decision.environment_id)
            .collect();
        self.confirmations
            .retain(|id| due.contains(id) || parked.contains(id));
    }

    /// After a pass: what was held back waits (parked or held when a cap held back its one
    /// action), and what was acted on is decided again as the action left it.
    fn after_pass(
        &mut self,
        now: DateTime<Utc>,
        waiting: Vec<Waiting>,
        acted: &[bool],
        capped: &[Option<Cap>],
    ) {
        let mut again = Vec::new();
        let mut held = Vec::new();
        for ((w, acted), capped) in waiting.into_iter().zip(acted).zip(capped) {
            let own = w.decision.action;
            let delete = w.decision.delete_step_action();
            match (*acted, capped) {
                (true, _) if self.slots[w.env as usize].status != Status::Gone => {
                    again.push(w.env);
                }
                (true, _) => {}
                (false, Some(Cap::MaxDeletesPerHour)) if own == Action::None => {
                    self.parked.insert(w.env, w);
                }
                (false, Some(Cap::MaxStopsPerPass)) if delete.is_none() && self.unique_ids => {
                    held.push(w);
                }
                (false, _) => self.pending.push(w),
            }
        }
        self.hold(held);
        let after = self.decide(now, &again);
        if !after.is_empty() {
            self.wait = Wait::Resync;
        }
        self.pending.extend(after);
    }

    /// Adds stops and starts held back to those held, oldest due first as the plan orders
    /// them (ids break ties: they are unique).
    fn hold(&mut self, more: Vec<Waiting>) {
        if more.is_empty() {
            return;
        }
        let mut held: Vec<Waiting> = std::mem::take(&mut self.held).into();
        held.extend(more);
        held.sort_by(|a, b| {
            let (a, b) = (&a.decision, &b.decision);
            (a.due_since, &a.environment_id).cmp(&(b.due_since, &b.environment_id))
        });
        self.held = held.into();
    }

    /// Decides for `which` at `now`: settlements are recorded, every environment is put
    /// back in the queue at its next check, and the decisions that call for actions are
    /// returned.
    ///
    /// The decisions are made one at a time and only those that act are kept: at a
    /// boundary that stops most of the fleet, not a second decision per environment beside
    /// them. What they settle is recorded once all are made, as with decisions made at once.
    fn decide(&mut self, now: DateTime<Utc>, which: &[u32]) -> Vec<Waiting> {
        let mut out = Vec::new();
        let mut settled = Vec::new();
        let (slots, queue, to) = (&mut self.slots, &mut self.queue, self.to);
        decide_batches(
            self.rules,
            self.listing,
            &self.envs,
            which,
            &self.view,
            now,
            |i, _, mut d| {
                // What the rules would do, dry-run or not.
                d.dry_run = false;
                schedule(slots, queue, to, i, d.next_check, now);
                let settles = d.action == Action::None && d.settle.is_some();
                let acts = d.actions().next().is_some();
                if settles && acts {
                    settled.push(d.clone());
                }
                match (settles, acts) {
                    (_, true) => out.push(Waiting {
                        env: i,
                        decision: Box::new(d),
                    }),
                    (true, false) => settled.push(d),
                    (false, false) => {}
                }
            },
        );
        for d in &settled {
            self.view.apply(d, now);
        }
        out
    }

    /// One step that goes ahead: the environment changes as the platform model says, the
    /// ledger view records it as the daemon's pass does (with what its decision settles,
    /// when it is the decision's own action), and the accounts count it.
    fn carry_out(
        &mut self,
        i: u32,
        d: &Step,
        own: Option<&Decision>,
        now: DateTime<Utc>,
        on_action: &mut impl FnMut(&super::SimulatedAction),
    ) {
        let u = i as usize;
        let Some(rule) = self.slots[u].rule else {
            return;
        };
        let present = self.envs[u].act(d.action);
        match own {
            Some(decision) => self.view.apply(decision, now),
            None => self.view.record(d, now),
        }
        let status = match (present, self.envs[u].state) {
            (false, _) => Status::Gone,
            (true, EnvState::Stopped) => Status::Stopped,
            (true, _) => Status::Running,
        };
        if status != self.slots[u].status {
            self.set_status(u, status, now);
        }
        let sim = self.envs[u];
        if present {
            self.view.observe_one(&sim.env(self.listing), now);
        }
        let env = &self.listing[sim.at as usize];
        if d.action == Action::Delete {
            self.slots[u].scheduled = None;
            self.deletes_done.push_back(now);
            self.deletes.push(ProjectedDelete {
                at: now,
                id: env.id.clone(),
                environment: env.name.clone(),
                project: env.project.clone(),
                rule: d.rule.clone(),
                reason: d.reason.clone(),
            });
        }
        self.account.action(rule, now, d.action);
        if let Some(actions) = &mut self.actions {
            actions[u].push((now, d.action));
        }
        on_action(&super::SimulatedAction {
            at: now,
            id: env.id.clone(),
            environment: env.name.clone(),
            rule: d.rule.clone(),
            action: d.action,
            cause: d.cause,
        });
    }

    fn set_status(&mut self, u: usize, status: Status, now: DateTime<Utc>) {
        let slot = &mut self.slots[u];
        if let Some(rule) = slot.rule {
            self.account
                .span(rule, slot.per_hour, slot.status, slot.since, now);
        }
        if slot.status == Status::Running {
            slot.running += (now - slot.since).num_seconds();
        }
        slot.status = status;
        slot.since = now;
    }

    /// Deletes done in the hour up to `now`, as the ledger counts them.
    fn deletes_last_hour(&mut self, now: DateTime<Utc>) -> i64 {
        let since = now - TimeDelta::hours(1);
        while self.deletes_done.front().is_some_and(|t| *t < since) {
            self.deletes_done.pop_front();
        }
        self.deletes_done.len() as i64
    }

    fn note_moment(&mut self, moment: Moment) {
        if moment.held_back > 0 {
            self.busiest.passes_capped += 1;
        }
        if moment.due() == 0 {
            return;
        }
        let moments = &mut self.busiest.moments;
        let at = moments.partition_point(|m| m.due() >= moment.due());
        if at < BUSIEST {
            moments.insert(at, moment);
            moments.truncate(BUSIEST);
        }
    }

    /// The next pass: the earliest instant a decision could change, a delete's second
    /// pass, or one resync on while actions wait.
    fn next_instant(&mut self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let queued = loop {
            let Some(Reverse((t, i))) = self.queue.peek().copied() else {
                break None;
            };
            if self.slots[i as usize].scheduled == Some(t) {
                break Some(t);
            }
            self.queue.pop();
        };
        let resync = self.options.resync;
        let waiting = match self.wait {
            Wait::Nothing => None,
            Wait::Resync => Some(now + resync),
            Wait::Hour => self.hour_frees_after(now),
        };
        [queued, self.confirmations.next_after(now), waiting]
            .into_iter()
            .flatten()
            .min()
    }

    /// The first pass, one resync after another from `now`, at which
    /// `max_deletes_per_hour` lets a delete through again: the passes between change
    /// nothing (their deletes are held back again), so they are not simulated.
    fn hour_frees_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let max = self.rules.safety.max_deletes_per_hour as usize;
        let resync = self.options.resync;
        if max == 0 || resync <= TimeDelta::zero() {
            return None;
        }
        // The deletes of the last hour are counted until an hour after each: a delete
        // goes again once all but max − 1 of them have left the hour.
        let leaves = *self
            .deletes_done
            .get(self.deletes_done.len().checked_sub(max)?)?;
        let free = leaves + TimeDelta::hours(1);
        let passes = (free - now).num_milliseconds() / resync.num_milliseconds() + 1;
        Some(now + resync * i32::try_from(passes.max(1)).ok()?)
    }

    /// The environments due at `now`, each once.
    fn pop_due(&mut self, now: DateTime<Utc>) -> Vec<u32> {
        let mut due = Vec::new();
        while let Some(Reverse((t, i))) = self.queue.peek().copied() {
            if t > now {
                break;
            }
            self.queue.pop();
            let slot = &mut self.slots[i as usize];
            if slot.scheduled == Some(t) {
                slot.scheduled = None;
                due.push(i);
            }
        }
        due
    }

    /// Closes every account at the horizon's end and sums it up.
    fn finish(mut self) -> Projection {
        let to = self.to;
        for u in 0..self.slots.len() {
            let status = self.slots[u].status;
            self.set_status(u, status, to);
        }
        let rules = self.rule_projections();
        let total = sum(rules.iter().map(|r| &r.totals));
        let daily = self.daily_rows();
        let horizons = self.horizon_savings();
        let per_environment = self.per_environment();
        Projection {
            from: self.from,
            to,
            days: self.options.days,
            timezone: self.rules.timezone.name().to_string(),
            currency: self.rules.currency.clone(),
            assumptions: Vec::new(),
            environments: self.envs.len(),
            passes: self.passes,
            rules,
            total,
            untouched: self.untouched,
            deletes: self.deletes,
            busiest: self.busiest,
            daily,
            horizons,
            per_environment,
        }
    }

    /// Each rule's totals, with how many environments it holds and how many of them have
    /// no cost (from the platform or the rule).
    fn rule_projections(&self) -> Vec<RuleProjection> {
        let mut rules: Vec<RuleProjection> = self
            .rules
            .rules
            .iter()
            .zip(&self.account.totals)
            .map(|(r, t)| RuleProjection {
                rule: r.name.to_string(),
                totals: totals(t),
            })
            .collect();
        for (slot, sim) in self.slots.iter().zip(&self.envs) {
            let env = &self.listing[sim.at as usize];
            if let Some(r) = slot.rule {
                rules[r].totals.environments += 1;
                let rule = &self.rules.rules[r];
                if env.hourly_cost.or(rule.hourly_cost).is_none() {
                    rules[r].totals.without_cost += 1;
                }
            }
        }
        rules
    }

    fn rule_names(&self) -> Vec<&str> {
        self.rules.rules.iter().map(|r| &*r.name).collect()
    }

    /// The daily series: one row per day and rule.
    fn daily_rows(&self) -> Vec<DayRow> {
        let names = self.rule_names();
        self.account
            .days()
            .flat_map(|(date, tallies)| {
                tallies.iter().zip(&names).map(move |(t, rule)| DayRow {
                    date,
                    rule: rule.to_string(),
                    hours_running: hours(t.running),
                    hours_stopped: hours(t.stopped),
                    hours_deleted: hours(t.gone),
                    always_on_cost: t.always_on,
                    projected_cost: t.cost,
                    saved: t.always_on - t.cost,
                    stops: t.stops,
                    starts: t.starts,
                    deletes: t.deletes,
                })
            })
            .collect()
    }

    /// What each rule saves over each of the options' horizons.
    fn horizon_savings(&self) -> Vec<HorizonSavings> {
        let names = self.rule_names();
        self.options
            .horizons
            .iter()
            .enumerate()
            .map(|(m, days)| {
                let rules: Vec<(String, f64)> = names
                    .iter()
                    .zip(self.account.before(m))
                    .map(|(n, t)| (n.to_string(), t.always_on - t.cost))
                    .collect();
                HorizonSavings {
                    days: *days,
                    total: rules.iter().map(|(_, s)| s).sum(),
                    rules,
                }
            })
            .collect()
    }

    /// Each environment's outcome, when the simulation kept its actions (else none).
    fn per_environment(&self) -> Vec<EnvironmentOutcome> {
        let Some(actions) = &self.actions else {
            return Vec::new();
        };
        self.envs
            .iter()
            .map(|sim| &self.listing[sim.at as usize])
            .zip(&self.slots)
            .zip(actions)
            .map(|((env, slot), actions)| EnvironmentOutcome {
                id: env.id.clone(),
                environment: env.name.clone(),
                project: env.project.clone(),
                rule: slot.rule.map(|r| self.rules.rules[r].name.clone()),
                hours_running: hours(slot.running),
                cost: match slot.rule {
                    Some(_) => slot.per_hour * hours(slot.running),
                    None => self
                        .untouched
                        .iter()
                        .find(|u| u.id == env.id)
                        .map_or(0.0, |u| u.cost),
                },
                actions: actions.clone(),
            })
            .collect()
    }
}

/// Puts environment `i` back in `queue` at its next check `at` (none past the horizon's end
/// `to`), as its slot records.
fn schedule(
    slots: &mut [Slot],
    queue: &mut BinaryHeap<Reverse<(DateTime<Utc>, u32)>>,
    to: DateTime<Utc>,
    i: u32,
    at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) {
    let at = at.filter(|t| *t > now && *t < to);
    slots[i as usize].scheduled = at;
    if let Some(t) = at {
        queue.push(Reverse((t, i)));
    }
}

/// Seconds as hours.
fn hours(s: i64) -> f64 {
    s as f64 / 3600.0
}

fn totals(t: &Tally) -> Totals {
    let saved = t.always_on - t.cost;
    Totals {
        environments: 0,
        hours_running: hours(t.running),
        hours_stopped: hours(t.stopped),
        hours_deleted: hours(t.gone),
        always_on_cost: t.always_on,
        projected_cost: t.cost,
        saved,
        saved_percent: (t.always_on > 0.0).then(|| 100.0 * saved / t.always_on),
        stops: t.stops,
        starts: t.starts,
        deletes: t.deletes,
        warnings: t.warnings,
        without_cost: 0,
    }
}

/// Several groups' totals as one.
pub(super) fn sum<'t>(all: impl Iterator<Item = &'t Totals>) -> Totals {
    let mut s = Totals::default();
    for t in all {
        s.environments += t.environments;
        s.hours_running += t.hours_running;
        s.hours_stopped += t.hours_stopped;
        s.hours_deleted += t.hours_deleted;
        s.always_on_cost += t.always_on_cost;
        s.projected_cost += t.projected_cost;
        s.stops += t.stops;
        s.starts += t.starts;
        s.deletes += t.deletes;
        s.warnings += t.warnings;
        s.without_cost += t.without_cost;
    }
    s.saved = s.always_on_cost - s.projected_cost;
    s.saved_percent = (s.always_on_cost > 0.0).then(|| 100.0 * s.saved / s.always_on_cost);
    s
}
