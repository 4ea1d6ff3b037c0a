//! The console's pages, styles and scripts, embedded in the binary at compile
//! time (`include_str!`): no CDN, no build step, nothing fetched at run time.
//! Scripts and styles are separate files so the Content-Security-Policy can
//! forbid inline code; data reaches the page only through `textContent`.

/// One embedded file.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The sign-in page, served at `/console/login`.
pub const LOGIN_HTML: &str = include_str!("login.html");
/// The application shell, served at `/console/` to a signed-in browser.
pub const APP_HTML: &str = include_str!("app.html");

/// Files under `/console/assets/`.
pub const ASSETS: [Asset; 5] = [
    Asset { name: "console.css", content_type: "text/css; charset=utf-8", body: include_str!("console.css") },
    Asset { name: "common.js", content_type: "text/javascript; charset=utf-8", body: include_str!("common.js") },
    Asset { name: "login.js", content_type: "text/javascript; charset=utf-8", body: include_str!("login.js") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_str!("app.js") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_str!("favicon.svg") },
];

pub fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// A strong validator for an embedded file: it changes whenever the binary's copy does.
pub fn etag(body: &str) -> String {
    format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body.as_bytes()))
}
