//! The hook through which the Stopped Event carries signed action links (wake now, keep
//! 4 h): the links are made by the status page's signer and handed in through
//! [`crate::platform::Platform::set_links`]; this adapter only appends their text.

use k8s_openapi::api::core::v1::Namespace;

use super::{Kubernetes, Notice};
use crate::platform::{NoticeKind, links_text};

impl Kubernetes {
    /// `notice` with the links of its kind appended (only a Stopped notice has any).
    pub(super) fn with_links(&self, ns: &Namespace, mut notice: Notice) -> Notice {
        let Some(links) = self.inner.links.get() else {
            return notice;
        };
        if notice.reason != "Stopped" {
            return notice;
        }
        let env = super::namespace::environment(ns, None, &self.inner.mapping, None);
        let made = links.links(
            &env.id,
            env.mode,
            NoticeKind::Stopped,
            "kubernetes event",
            self.inner.clock.now(),
        );
        if made.is_empty() {
            return notice;
        }
        // An Event's note holds 1 KiB: the links are kept whole, the details shortened.
        let links = links_text(&made);
        let room = super::events::MAX_NOTE.saturating_sub(links.len() + " — ".len() + 3);
        let mut note = notice.note;
        if note.len() > room {
            let cut = (0..=room)
                .rev()
                .find(|i| note.is_char_boundary(*i))
                .unwrap_or(0);
            note.truncate(cut);
            note.push('…');
        }
        notice.note = format!("{note} — {links}");
        notice
    }
}
