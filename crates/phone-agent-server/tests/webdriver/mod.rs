//! A small W3C WebDriver client for the console's browser tests: Debian's `chromedriver`
//! started on a free loopback port, driving headless Chromium (`--no-sandbox`: the tests may
//! run as root), with a temporary profile. Nothing is downloaded: both binaries come from the
//! system (`.ci/run` installs them).
//!
//! Missing binaries: outside CI the test says loudly that it is skipped; in CI (`CI=true`) it
//! fails, like the PostgreSQL tests.

#![allow(unreachable_pub, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::time::Instant;

/// Debian's ChromeDriver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a wait for the page may take.
pub const PAGE_WAIT: Duration = Duration::from_secs(20);
/// The W3C element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A running ChromeDriver and one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    base: String,
    session: String,
    _profile: PathBuf,
}

/// One element of the page, with the selector that found it: the live page reloads itself when
/// a call appears (and when its event stream falls behind), so an element found a moment ago
/// may be stale by the time it is read or clicked; it is then found again by its selector.
#[derive(Debug, Clone)]
pub struct Element {
    id: String,
    css: String,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium, or (outside CI, binaries missing) returns
    /// `None` after saying the test is skipped.
    pub async fn start_or_skip(test: &str) -> Option<Browser> {
        let missing: Vec<&str> = [CHROMEDRIVER, CHROMIUM]
            .into_iter()
            .filter(|p| !Path::new(p).is_file())
            .collect();
        if !missing.is_empty() {
            let message = format!(
                "{} not found (install Debian's chromium and chromium-driver; .ci/run does)",
                missing.join(" and ")
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{test}: {message}");
            }
            eprintln!("\n!!! SKIPPING {test}: {message} — this test runs in CI (CI=true) !!!\n");
            return None;
        }
        Some(Browser::start().await)
    }

    async fn start() -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            l.local_addr().expect("local addr").port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = phone_agent_server::twilio_rest::http_client().expect("HTTP client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            let ready = match http.get(format!("{base}/status")).send().await {
                Ok(r) => r.text().await.ok().and_then(|t| {
                    serde_json::from_str::<Value>(&t).ok()?["value"]["ready"].as_bool()
                }),
                Err(_) => None,
            };
            if ready == Some(true) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let profile = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("chromium-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut browser = Browser {
            driver,
            http,
            base,
            session: String::new(),
            _profile: profile.clone(),
        };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                    "--disable-extensions", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        let v = browser.post("/session", caps).await;
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_owned();
        browser
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        match self.try_send(method, path, body).await {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    /// One WebDriver request; a WebDriver error is returned as `Err` with its message.
    async fn try_send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let mut req = self.http.request(method, &url);
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = req.send().await.expect("chromedriver answers");
        let status = response.status();
        let text = response.text().await.expect("chromedriver body");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("WebDriver {path}: {status} {text}"));
        }
        Ok(v["value"].clone())
    }

    /// Runs `action` (a request about element `e`, built by `path`) and, while the element is
    /// stale because the page reloaded, finds it again by its selector and retries (bounded).
    async fn on_element(
        &self,
        e: &Element,
        method: reqwest::Method,
        path: impl Fn(&str) -> String,
        body: Option<Value>,
    ) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        let mut id = e.id.clone();
        loop {
            match self
                .try_send(method.clone(), &path(&id), body.clone())
                .await
            {
                Ok(v) => return v,
                Err(err) if is_stale(&err) && Instant::now() < deadline => {
                    id = self.find(&e.css).await.id;
                }
                Err(err) => panic!("{err}"),
            }
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.get("/url")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The elements matching `css`.
    pub async fn find_all(&self, css: &str) -> Vec<Element> {
        let v = self
            .post("/elements", json!({"using": "css selector", "value": css}))
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e[ELEMENT].as_str().map(|id| Element {
                    id: id.to_owned(),
                    css: css.to_owned(),
                })
            })
            .collect()
    }

    /// The first element matching `css`, waiting for it (bounded).
    pub async fn find(&self, css: &str) -> Element {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            if let Some(e) = self.find_all(css).await.into_iter().next() {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// An element's rendered text.
    pub async fn text(&self, e: &Element) -> String {
        self.on_element(
            e,
            reqwest::Method::GET,
            |id| format!("/element/{id}/text"),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.on_element(
            e,
            reqwest::Method::POST,
            |id| format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types into an element.
    pub async fn type_text(&self, e: &Element, text: &str) {
        self.on_element(
            e,
            reqwest::Method::POST,
            |id| format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Runs `script` in the page and returns its result.
    pub async fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits (bounded) until the text of the first element matching `css` satisfies `done`;
    /// returns it.
    pub async fn wait_text(&self, css: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            // The page may reload between finding and reading: read whatever is there now.
            // An element replaced since it was found is "stale": read again on the next round.
            let mut last = String::new();
            for e in self.find_all(css).await.into_iter().take(1) {
                match self
                    .try_send(
                        reqwest::Method::GET,
                        &format!("/element/{}/text", e.id),
                        None,
                    )
                    .await
                {
                    Ok(v) => last = v.as_str().unwrap_or_default().to_owned(),
                    // Reloaded between finding and reading: look again.
                    Err(err) if is_stale(&err) => {}
                    Err(err) => panic!("{err}"),
                }
            }
            if done(&last) {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never satisfied the condition; last text: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The value of cookie `name` (HttpOnly cookies included).
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        let all = self.get("/cookie").await;
        all.as_array()?.iter().find(|c| c["name"] == name).cloned()
    }

    /// Saves a screenshot of the viewport as PNG at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.get("/screenshot").await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .expect("valid base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Browser {
    /// Ends the session (Chromium exits) and the driver.
    pub async fn close(mut self) {
        self.send(reqwest::Method::DELETE, "", None).await;
        self.session.clear();
    }
}

/// Whether a WebDriver error says the element is gone from the page (it reloaded).
///
/// Chromium reports this three ways: the standard "stale element reference", "no such
/// element", and — when the page replaced the node while the driver was reading it — an
/// "unknown error" wrapping the inspector's "Node with given id does not belong to the
/// document" (seen in CI on the console test).
fn is_stale(error: &str) -> bool {
    error.contains("stale element reference")
        || error.contains("no such element")
        || error.contains("does not belong to the document")
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close`: end the session (Chromium exits) with a blocking
        // request, then the driver (the one process this client started, by its handle).
        if !self.session.is_empty() {
            use std::io::{Read as _, Write as _};
            let addr = self.base.trim_start_matches("http://").to_owned();
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = write!(
                    s,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session
                );
                let mut answer = Vec::new();
                let _ = s.read_to_end(&mut answer);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
