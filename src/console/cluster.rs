//! The cluster page's data: nodes, erasure sets, drives (online, free space),
//! quorum state and version, as one JSON document built by [`snapshot`].
//!
//! Everything comes from `cluster::info::gather`, the report `basalt admin info`
//! prints, so the page and the command line never disagree.

use std::rc::Rc;

use serde::Serialize;

use super::Console;
use crate::runtime::CoreCtx;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    pub version: &'static str,
    pub deployment_id: String,
    pub uptime_secs: u64,
    /// Seconds since the Unix epoch when this snapshot was taken.
    pub taken_at: i64,
    pub nodes: Vec<Node>,
    pub sets: Vec<Set>,
    pub drives_online: usize,
    pub drives_total: usize,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Every set can serve reads (read quorum of its drives online).
    pub can_read: bool,
    /// Every set can accept writes.
    pub can_write: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Node {
    pub endpoint: String,
    pub online: bool,
    pub drives_online: usize,
    pub drives_total: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Set {
    pub index: usize,
    pub data: usize,
    pub parity: usize,
    pub read_quorum: usize,
    pub write_quorum: usize,
    pub drives_online: usize,
    /// `ok` (every drive online), `degraded` (writes still reach quorum),
    /// `read-only` (reads only) or `unavailable`.
    pub status: &'static str,
    pub drives: Vec<Drive>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub index: usize,
    pub endpoint: String,
    pub node: String,
    pub online: bool,
    pub total_bytes: u64,
    pub free_bytes: u64,
    /// Why the drive is not online, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The cluster as this node sees it (`cluster::info`, the same report as
/// `basalt admin info`), shaped for the page.
pub async fn snapshot(ctx: &Rc<CoreCtx>, console: &Console) -> Snapshot {
    let info = crate::cluster::info::gather(ctx).await;
    let distributed = ctx.core.topology().distributed;
    let node_name = |address: &str| if distributed { address.to_string() } else { console.settings.endpoint.clone() };
    let mut by_drive = std::collections::HashMap::new();
    for n in &info.nodes {
        for d in &n.drives {
            by_drive.insert(d.drive, (node_name(&n.address), d));
        }
    }
    let sets: Vec<Set> = info
        .sets
        .iter()
        .map(|s| {
            let drives: Vec<Drive> = s
                .drives
                .iter()
                .filter_map(|number| by_drive.get(number))
                .map(|(node, d)| Drive {
                    index: d.drive - 1,
                    endpoint: d.endpoint.clone(),
                    node: node.clone(),
                    online: d.state == "online",
                    total_bytes: d.total_bytes,
                    free_bytes: d.free_bytes,
                    error: d.error.clone().or_else(|| (d.state != "online").then(|| d.state.clone())),
                })
                .collect();
            let online = drives.iter().filter(|d| d.online).count();
            let status = if online == drives.len() {
                "ok"
            } else if online >= s.write_quorum {
                "degraded"
            } else if online >= s.read_quorum {
                "read-only"
            } else {
                "unavailable"
            };
            Set {
                index: s.set - 1,
                data: s.data,
                parity: s.parity,
                read_quorum: s.read_quorum,
                write_quorum: s.write_quorum,
                drives_online: online,
                status,
                drives,
            }
        })
        .collect();
    let nodes = info
        .nodes
        .iter()
        .map(|n| Node {
            endpoint: node_name(&n.address),
            online: n.online,
            drives_online: n.drives.iter().filter(|d| d.state == "online").count(),
            drives_total: n.drives.len(),
        })
        .collect();
    let all = || sets.iter().flat_map(|s| s.drives.iter());
    let drives_online = all().filter(|d| d.online).count();
    let drives_total = all().count();
    Snapshot {
        version: env!("CARGO_PKG_VERSION"),
        deployment_id: info.deployment_id.clone(),
        uptime_secs: console.started.elapsed().as_secs(),
        taken_at: crate::http::date::now_secs(),
        nodes,
        drives_online,
        drives_total,
        total_bytes: all().map(|d| d.total_bytes).sum(),
        free_bytes: all().map(|d| d.free_bytes).sum(),
        can_read: info.read_quorum,
        can_write: info.write_quorum,
        sets,
    }
}
