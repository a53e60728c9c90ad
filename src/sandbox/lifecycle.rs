//! Qovery's environment states and how an action walks an environment through them.
//!
//! Nothing here runs on a timer: an environment remembers its settled state and the
//! action in progress with the instant it was accepted, and its state at any `now` is
//! computed from those. So a test moves a [`ManualClock`](crate::clock::ManualClock) by
//! `step` and sees the next state, and nothing happens between requests.

use chrono::{DateTime, TimeDelta, Utc};

macro_rules! states {
    ($($variant:ident => $name:literal),* $(,)?) => {
        /// Qovery's `StateEnum`: every value the spec lists, spelled as the API spells it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum State { $($variant),* }

        impl State {
            const ALL: &[State] = &[$(State::$variant),*];

            pub(super) fn as_str(self) -> &'static str {
                match self { $(State::$variant => $name),* }
            }
        }
    };
}

states! {
    Building => "BUILDING",
    BuildError => "BUILD_ERROR",
    Canceled => "CANCELED",
    Canceling => "CANCELING",
    Deleted => "DELETED",
    DeleteError => "DELETE_ERROR",
    DeleteQueued => "DELETE_QUEUED",
    Deleting => "DELETING",
    Deployed => "DEPLOYED",
    Deploying => "DEPLOYING",
    DeploymentError => "DEPLOYMENT_ERROR",
    DeploymentQueued => "DEPLOYMENT_QUEUED",
    Executing => "EXECUTING",
    Queued => "QUEUED",
    Ready => "READY",
    Recap => "RECAP",
    Restarted => "RESTARTED",
    Restarting => "RESTARTING",
    RestartError => "RESTART_ERROR",
    RestartQueued => "RESTART_QUEUED",
    Stopped => "STOPPED",
    Stopping => "STOPPING",
    StopError => "STOP_ERROR",
    StopQueued => "STOP_QUEUED",
    Unavailable => "UNAVAILABLE",
    WaitingDeleting => "WAITING_DELETING",
    WaitingRestarting => "WAITING_RESTARTING",
    WaitingRunning => "WAITING_RUNNING",
    WaitingStopping => "WAITING_STOPPING",
}

impl State {
    /// Parses a state exactly as the API writes it (`DEPLOYED`, `STOP_QUEUED`).
    pub(super) fn parse(text: &str) -> Option<State> {
        State::ALL.iter().copied().find(|s| s.as_str() == text)
    }

    /// An operation is under way: Qovery answers 409 to any new action.
    pub(super) fn is_busy(self) -> bool {
        use State::*;
        matches!(
            self,
            Building
                | Canceling
                | DeleteQueued
                | Deleting
                | Deploying
                | DeploymentQueued
                | Executing
                | Queued
                | Restarting
                | RestartQueued
                | Stopping
                | StopQueued
                | WaitingDeleting
                | WaitingRestarting
                | WaitingRunning
                | WaitingStopping
        )
    }

    /// Whether a stop is accepted: anything settled that is not already down. A failed
    /// environment may be stopped (that is how people clean up after a failed deploy).
    pub(super) fn accepts_stop(self) -> bool {
        !self.is_busy() && !matches!(self, State::Stopped | State::Ready | State::Deleted)
    }

    /// Whether a deploy is accepted: anything settled that is not already up.
    pub(super) fn accepts_deploy(self) -> bool {
        !self.is_busy() && !matches!(self, State::Deployed | State::Restarted | State::Deleted)
    }
}

/// An action the sandbox accepted and is carrying out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Stop,
    Deploy,
    Delete,
}

impl Action {
    /// The states the action passes through, one `step` each, then the state it ends in.
    fn path(self) -> ([State; 2], State) {
        match self {
            Action::Stop => ([State::StopQueued, State::Stopping], State::Stopped),
            Action::Deploy => ([State::DeploymentQueued, State::Deploying], State::Deployed),
            Action::Delete => ([State::DeleteQueued, State::Deleting], State::Deleted),
        }
    }
}

/// Where an environment stands: a settled state, and maybe an action under way.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Lifecycle {
    settled: State,
    action: Option<(Action, DateTime<Utc>)>,
}

impl Lifecycle {
    pub(super) fn settled(state: State) -> Lifecycle {
        Lifecycle {
            settled: state,
            action: None,
        }
    }

    /// The state as of `now`. A clock set before the action's start reads as its first
    /// state rather than going back in history.
    pub(super) fn state_at(&self, now: DateTime<Utc>, step: TimeDelta) -> State {
        let Some((action, since)) = self.action else {
            return self.settled;
        };
        let (passing, last) = action.path();
        let elapsed = (now - since).max(TimeDelta::zero());
        passing
            .iter()
            .enumerate()
            .find(|(i, _)| elapsed < step * (*i as i32 + 1))
            .map_or(last, |(_, s)| *s)
    }

    /// When the action under way ends (it passes its states one `step` each).
    pub(super) fn finishes_at(&self, step: TimeDelta) -> Option<DateTime<Utc>> {
        let (action, since) = self.action?;
        Some(since + step * action.path().0.len() as i32)
    }

    /// Folds a finished action into the settled state, so the record stays small.
    pub(super) fn settle(&mut self, now: DateTime<Utc>, step: TimeDelta) {
        let state = self.state_at(now, step);
        if !state.is_busy() {
            *self = Lifecycle::settled(state);
        }
    }

    /// Starts `action` at `now` (the caller has checked the state accepts it).
    pub(super) fn begin(&mut self, action: Action, now: DateTime<Utc>) {
        self.action = Some((action, now));
    }

    /// Whether a delete is under way (a second delete changes nothing).
    pub(super) fn is_deleting(&self) -> bool {
        matches!(self.action, Some((Action::Delete, _)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn every_state_round_trips_through_its_name() {
        for state in State::ALL {
            assert_eq!(State::parse(state.as_str()), Some(*state));
        }
        assert_eq!(State::ALL.len(), 29, "the spec's StateEnum has 29 values");
        assert_eq!(State::parse("RUNNING"), None, "Qovery has no RUNNING");
        assert_eq!(State::parse("deployed"), None);
    }

    #[test]
    fn each_action_passes_through_two_states_of_one_step_each() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let step = TimeDelta::seconds(20);
        let cases = [
            (Action::Stop, ["STOP_QUEUED", "STOPPING", "STOPPED"]),
            (
                Action::Deploy,
                ["DEPLOYMENT_QUEUED", "DEPLOYING", "DEPLOYED"],
            ),
            (Action::Delete, ["DELETE_QUEUED", "DELETING", "DELETED"]),
        ];
        for (action, expected) in cases {
            let mut life = Lifecycle::settled(State::Ready);
            life.begin(action, start);
            let at = |secs: i64| {
                life.state_at(start + TimeDelta::seconds(secs), step)
                    .as_str()
            };
            assert_eq!(at(-5), expected[0], "{action:?} before its start");
            assert_eq!(at(0), expected[0], "{action:?}");
            assert_eq!(at(19), expected[0], "{action:?}");
            assert_eq!(at(20), expected[1], "{action:?}");
            assert_eq!(at(39), expected[1], "{action:?}");
            assert_eq!(at(40), expected[2], "{action:?}");
            assert_eq!(at(4000), expected[2], "{action:?}");
        }
    }

    #[test]
    fn settling_keeps_an_action_in_progress_and_folds_a_finished_one() {
        let start = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let step = TimeDelta::seconds(20);
        let mut life = Lifecycle::settled(State::Deployed);
        life.begin(Action::Stop, start);
        life.settle(start + step, step);
        assert_eq!(life.state_at(start + step, step), State::Stopping);
        life.settle(start + step * 2, step);
        assert_eq!(life, Lifecycle::settled(State::Stopped));
    }

    #[test]
    fn which_actions_each_settled_state_accepts() {
        // (state, stop accepted, deploy accepted)
        let cases = [
            (State::Deployed, true, false),
            (State::Stopped, false, true),
            (State::Ready, false, true),
            (State::DeploymentError, true, true),
            (State::StopQueued, false, false),
            (State::Deploying, false, false),
            (State::Deleting, false, false),
        ];
        for (state, stop, deploy) in cases {
            assert_eq!(state.accepts_stop(), stop, "{state:?} stop");
            assert_eq!(state.accepts_deploy(), deploy, "{state:?} deploy");
        }
    }
}
