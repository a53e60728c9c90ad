//! The status page's parts: the signer of action links (its keys, its public URL) and
//! who may see and use the page.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use crate::admin::AdminTokens;
use crate::config::settings::Settings;
use crate::ui::{LinkKeyError, LinkKeys, Sessions, Signer, UiOptions};

/// The signer of action links: keys from `daemon.link_key_env`/`link_key_file`, links made
/// on `daemon.public_url`. `None` (links off) without a key or without the URL.
pub(super) async fn signer(
    settings: &Settings,
    env: &HashMap<String, String>,
) -> Result<Option<Arc<Signer>>, LinkKeyError> {
    let page = &settings.page;
    let keys = LinkKeys::load(
        env,
        page.link_key_env.as_deref(),
        page.link_key_file.as_deref(),
    )
    .await?;
    let to_delta = |d: Duration| TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
    match (keys, &page.public_url) {
        (Some(keys), Some(url)) => Ok(Some(Arc::new(Signer::new(
            keys,
            url,
            to_delta(page.link_expiry),
            to_delta(settings.admin_max_snooze),
        )))),
        (Some(_), None) => {
            tracing::warn!(
                "a link key is set but daemon.public_url is not: notifications carry no action links"
            );
            Ok(None)
        }
        (None, _) => Ok(None),
    }
}

/// The status page's access and sessions: `daemon.page`, by default behind the login when
/// an admin token (or a proxy) lets anyone log in, and off otherwise. `None`: the page is
/// `login` but nobody can log in.
pub(super) fn options(
    settings: &Settings,
    tokens: Option<AdminTokens>,
    signer: Option<Arc<Signer>>,
) -> Option<UiOptions> {
    let page = &settings.page;
    let access = page.access(tokens.is_some())?;
    let session = TimeDelta::from_std(page.session).unwrap_or(TimeDelta::hours(12));
    Some(UiOptions {
        access,
        tokens,
        sessions: Sessions::new(session, page.secure_cookie(), page.proxy.clone()),
        signer,
    })
}
