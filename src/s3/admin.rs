//! The admin API, under `/minio/admin/v3/` like MinIO's, signed with the root
//! keys like any S3 request: `GET info` describes nodes, drives and sets;
//! `POST heal` runs a heal pass over every object and reports what it fixed.
//! Answers are JSON (`basalt admin` renders them).

use std::rc::Rc;

use crate::error::{Error, Result};
use crate::http::response::Response;
use crate::runtime::CoreCtx;

/// The bucket-like first path segment of admin requests.
pub const ADMIN_BUCKET: &str = "minio";
const ADMIN_PREFIX: &str = "admin/v3/";

/// Whether a request's target is the admin API.
pub fn is_admin(bucket: &str, key: &str) -> bool {
    bucket == ADMIN_BUCKET && key.starts_with(ADMIN_PREFIX)
}

pub async fn route(ctx: &Rc<CoreCtx>, method: &str, key: &str) -> Result<Response> {
    let op = key.strip_prefix(ADMIN_PREFIX).unwrap_or_default();
    match (method, op) {
        ("GET", "info") => {
            let info = crate::cluster::info::gather(ctx).await;
            json(&info)
        }
        ("POST", "heal") => {
            let summary = ctx.objects.heal_all().await?;
            json(&summary)
        }
        (_, "info" | "heal") => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotImplemented(format!("admin API {op}"))),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<Response> {
    let body = serde_json::to_string_pretty(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(Response::with_body(200, "application/json", body))
}
