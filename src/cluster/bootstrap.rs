//! Start-up agreement: before a cluster node serves, it learns the format of
//! every drive it can reach and decides which deployment they belong to.
//!
//! - Nothing formatted anywhere: wait until every node is online, then the first
//!   node (in argument order) writes a new format on every drive; the others see
//!   it on their next look.
//! - Formatted: the format most drives carry is the cluster's; this node's
//!   unformatted drives (new or replaced, or missed by an interrupted format) are
//!   formatted into their positions; the node starts once every set has read
//!   quorum of drives carrying it, so a cluster comes up with nodes missing.
//! - A drive of this node formatted for another deployment or position stops it
//!   with a message, as on a single node.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use super::serve::{local_formats, write_format};
use super::wire::{Request, Response};
use crate::drive::format::{Format, Formatted};
use crate::runtime::CoreCtx;

/// How often the drives are looked at again while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How often a waiting node says what it waits for.
const REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How long one node may take to report its formats.
const FORMATS_TIMEOUT: Duration = Duration::from_secs(5);

/// What one look at the drives found, per drive (global index).
enum Seen {
    Unreachable,
    Unformatted,
    Formatted(Format),
    Broken(String),
}

/// Waits until the drives are agreed on; `say` gets progress lines for the
/// person at the terminal. Errors are fatal start-up messages.
pub async fn agree(ctx: Rc<CoreCtx>, say: impl Fn(String)) -> Result<Formatted, String> {
    let topo = ctx.core.topology().clone();
    let started = Instant::now();
    let mut last_report: Option<Instant> = None;
    loop {
        let seen = look(&ctx).await;
        let online_nodes = 1 + ctx.core.peers().iter().filter(|p| p.is_up()).count();
        let report = |what: String| {
            if last_report.is_none_or(|t| t.elapsed() >= REPORT_INTERVAL) {
                say(format!(
                    "{what} (elapsed {}s, {online_nodes}/{} online)",
                    started.elapsed().as_secs(),
                    topo.nodes.len()
                ));
                true
            } else {
                false
            }
        };
        for (d, s) in seen.iter().enumerate() {
            if let Seen::Broken(why) = s
                && topo.is_local(d)
            {
                return Err(why.clone());
            }
        }
        let formats: Vec<&Format> =
            seen.iter().filter_map(|s| if let Seen::Formatted(f) = s { Some(f) } else { None }).collect();
        if formats.is_empty() {
            let all_here = seen.iter().all(|s| matches!(s, Seen::Unformatted));
            if all_here && topo.local == 0 {
                say(format!("All {} servers are online: formatting {} drives", topo.nodes.len(), topo.endpoints.len()));
                format_everything(&ctx).await;
                continue;
            }
            let what = if all_here {
                "Waiting for the first server to format the drives".to_string()
            } else {
                "Waiting for all other servers to be online to format the drives".to_string()
            };
            if report(what) {
                last_report = Some(Instant::now());
            }
            glommio::timer::sleep(POLL_INTERVAL).await;
            continue;
        }
        let reference = majority(&formats);
        let flat: Vec<String> = reference.sets.iter().flatten().cloned().collect();
        if flat.len() != topo.endpoints.len() || reference.sets.first().map(Vec::len) != Some(topo.layout.set_size) {
            return Err(format!(
                "the drives were formatted as {} drives in sets of {}, but {} drives in sets of {} were given; \
                 start every node with the arguments of the first start",
                flat.len(),
                reference.sets.first().map_or(0, Vec::len),
                topo.endpoints.len(),
                topo.layout.set_size
            ));
        }
        let format_of = |d: usize| Format {
            deployment_id: reference.deployment_id.clone(),
            drive_id: flat[d].clone(),
            sets: reference.sets.clone(),
        };
        let mut good = vec![false; topo.endpoints.len()];
        let mut fresh = Vec::new();
        for (d, s) in seen.iter().enumerate() {
            match s {
                Seen::Formatted(f) if f.deployment_id == reference.deployment_id && f.drive_id == flat[d] => {
                    good[d] = true
                }
                Seen::Formatted(f) if topo.is_local(d) => {
                    return Err(format!(
                        "drive {} ({}) carries another format (deployment {}, drive {}) than the cluster's \
                         (deployment {}); wipe it to reuse it here",
                        d + 1,
                        topo.endpoints[d].path.display(),
                        f.deployment_id,
                        f.drive_id,
                        reference.deployment_id
                    ));
                }
                Seen::Unformatted if topo.is_local(d) => match write_format(&ctx, d, format_of(d)).await {
                    Ok(()) => {
                        fresh.push(d);
                        good[d] = true;
                    }
                    // Another node may be formatting it right now; look again.
                    Err(why) => tracing::warn!(drive = %topo.endpoints[d].text, %why, "cannot format a drive yet"),
                },
                _ => {}
            }
        }
        let short: Vec<String> = topo
            .layout
            .sets
            .iter()
            .enumerate()
            .filter_map(|(i, set)| {
                let have = set.iter().filter(|d| good[**d]).count();
                (have < topo.layout.read_quorum())
                    .then(|| format!("set {}: {have} of {}", i + 1, topo.layout.read_quorum()))
            })
            .collect();
        if short.is_empty() {
            let formats = (0..topo.endpoints.len()).map(format_of).collect();
            return Ok(Formatted { deployment_id: reference.deployment_id.clone(), formats, fresh });
        }
        if report(format!("Waiting for enough drives to be online to read the data ({})", short.join(", "))) {
            last_report = Some(Instant::now());
        }
        glommio::timer::sleep(POLL_INTERVAL).await;
    }
}

/// The format of every drive: this node's read from disk, the others' asked for.
async fn look(ctx: &Rc<CoreCtx>) -> Vec<Seen> {
    let topo = ctx.core.topology();
    let mut seen: Vec<Seen> = (0..topo.endpoints.len()).map(|_| Seen::Unreachable).collect();
    let mine = local_formats(ctx).await;
    let peers = ctx.core.peers().to_vec();
    let theirs = join_all(peers.iter().map(|p| p.call(Request::Formats, FORMATS_TIMEOUT))).await;
    let mut all = mine;
    for r in theirs {
        if let Ok(Response::Formats(list)) = r {
            all.extend(list);
        }
    }
    for (d, r) in all {
        let d = d as usize;
        if d >= seen.len() {
            continue;
        }
        seen[d] = match r {
            Ok(Some(f)) => Seen::Formatted(f),
            Ok(None) => Seen::Unformatted,
            Err(why) => Seen::Broken(why),
        };
    }
    seen
}

/// The format most drives agree on (deployment and set layout).
fn majority<'a>(formats: &[&'a Format]) -> &'a Format {
    let mut votes: HashMap<(&str, &Vec<Vec<String>>), usize> = HashMap::new();
    for f in formats {
        *votes.entry((f.deployment_id.as_str(), &f.sets)).or_default() += 1;
    }
    let mut best = formats[0];
    let mut best_votes = 0;
    for f in formats {
        let v = votes[&(f.deployment_id.as_str(), &f.sets)];
        if v > best_votes {
            best = f;
            best_votes = v;
        }
    }
    best
}

/// A new deployment on every drive of the cluster (run by the first node).
async fn format_everything(ctx: &Rc<CoreCtx>) {
    let topo = ctx.core.topology().clone();
    let deployment_id = uuid::Uuid::new_v4().to_string();
    let sets: Vec<Vec<String>> =
        topo.layout.sets.iter().map(|s| s.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect()).collect();
    let flat: Vec<String> = sets.iter().flatten().cloned().collect();
    let peers = ctx.core.peers().to_vec();
    for (d, ep) in topo.endpoints.iter().enumerate() {
        let f = Format { deployment_id: deployment_id.clone(), drive_id: flat[d].clone(), sets: sets.clone() };
        if ep.node == topo.local {
            if let Err(why) = write_format(ctx, d, f).await {
                tracing::warn!(drive = %ep.text, %why, "cannot format a drive");
            }
        } else if let Some(p) = peers.iter().find(|p| p.node == ep.node) {
            match p.call(Request::WriteFormat { drive: d as u32, format: f }, FORMATS_TIMEOUT).await {
                Ok(Response::Done(Ok(()))) => {}
                Ok(Response::Done(Err(why))) => tracing::warn!(drive = %ep.text, %why, "cannot format a drive"),
                other => tracing::warn!(drive = %ep.text, answer = ?other.err(), "cannot format a drive"),
            }
        }
    }
}
