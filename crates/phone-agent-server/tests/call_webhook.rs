//! The end-of-call webhook, end to end against a real call store (SQLite; PostgreSQL for the
//! restart): the record is POSTed with a signature a receiver can verify and the call SID as
//! idempotency key, retried after 500s until delivered, and delivered after a restart when the
//! server stopped while the receiver was down (the outbox row outlives the process).

mod e2e_support;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use e2e_support::{Bridge, WAIT, session_of};
use hmac::{KeyInit, Mac};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use testkit::openai::{MockRealtime, ResponseScript, Script};
use testkit::postgres::PgCluster;
use tokio::time::Instant;

const SECRET: &str = "whsec-call-webhook-test";
const ADMIN: &str = "call-webhook-test-admin-token-0123";

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HashMap<String, String>,
    body: Vec<u8>,
    answered: u16,
}

/// A webhook receiver: answers the queued statuses in order, then `otherwise`.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<(VecDeque<u16>, u16)>>,
}

impl Receiver {
    async fn start(queued: &[u16], otherwise: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new((
            queued.iter().copied().collect::<VecDeque<u16>>(),
            otherwise,
        )));
        let (rec, ans) = (Arc::clone(&received), Arc::clone(&answers));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (rec, ans) = (Arc::clone(&rec), Arc::clone(&ans));
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (rec, ans) = (Arc::clone(&rec), Arc::clone(&ans));
                        async move {
                            let headers = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                                })
                                .collect();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = {
                                let mut a = ans.lock().unwrap();
                                let otherwise = a.1;
                                a.0.pop_front().unwrap_or(otherwise)
                            };
                            rec.lock().unwrap().push(Received {
                                headers,
                                body: body.to_vec(),
                                answered: status,
                            });
                            let mut r = http::Response::new(Full::new(Bytes::from_static(b"ok")));
                            *r.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            Ok::<_, std::convert::Infallible>(r)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            received,
            answers,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/calls/ended", self.addr)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn answer_from_now(&self, status: u16) {
        *self.answers.lock().unwrap() = (VecDeque::new(), status);
    }

    /// Waits (bounded) until a request was answered 2xx; returns every request so far.
    async fn wait_delivered(&self) -> Vec<Received> {
        self.wait_until(|r| r.iter().any(|x| x.answered < 300), "a delivery")
            .await
    }

    async fn wait_until(&self, done: impl Fn(&[Received]) -> bool, what: &str) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.received();
            if done(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "no {what}: {r:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What a receiver does: recompute the HMAC over the raw body with the shared secret.
fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let fields: HashMap<&str, &str> = header
        .split(',')
        .filter_map(|p| p.split_once('='))
        .collect();
    let (Some(t), Some(v1)) = (fields.get("t"), fields.get("v1")) else {
        return false;
    };
    let Ok(t_secs) = t.parse::<u64>() else {
        return false;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(t_secs) > 300 {
        return false;
    }
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    expected == *v1
}

fn sqlite_url(name: &str) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("call-webhook-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("calls.db").display().to_string()
}

async fn mock() -> MockRealtime {
    MockRealtime::builder()
        .script(Script::new().fallback(ResponseScript::say("Hello from Acme.", 400)))
        .start()
        .await
        .unwrap()
}

async fn bridge(mock: &MockRealtime, database_url: &str, receiver: &Receiver) -> Bridge {
    let url = receiver.url();
    Bridge::start(
        &mock.base_url(),
        &[
            ("PHONE_AGENT_DATABASE__URL", database_url),
            ("PHONE_AGENT_ADMIN__TOKEN", ADMIN),
            ("PHONE_AGENT_WEBHOOKS__SIGNING_SECRET", SECRET),
            ("PHONE_AGENT_CALL_WEBHOOK__URL", &url),
            ("PHONE_AGENT_CALL_WEBHOOK__RETRY_INITIAL_MS", "50"),
            ("PHONE_AGENT_CALL_WEBHOOK__RETRY_MAX_MS", "200"),
        ],
    )
    .await
}

/// A call: the greeting is heard in full, then the caller hangs up. Returns its SID.
async fn greeting_call(bridge: &Bridge, mock: &MockRealtime) -> String {
    let call = bridge.sim.call().connect().await.unwrap();
    let sid = call.call_sid().to_owned();
    let session = session_of(mock, &sid).await;
    session.wait_for_response_done(1, WAIT).await.unwrap();
    let greeting = session.assistant_items()[0].audio.clone();
    call.wait_heard(greeting.len(), WAIT).await.unwrap();
    call.stop(WAIT).await.unwrap();
    sid
}

async fn api_record(bridge: &Bridge, sid: &str) -> Value {
    let url = format!("http://{}/api/calls/{sid}", bridge.addr);
    let auth = format!("Bearer {ADMIN}");
    let r = testkit::http::request(
        ::http::Method::GET,
        &url,
        &[("authorization", auth.as_str())],
        Bytes::new(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_record_is_posted_signed_with_its_idempotency_key_and_retried_after_500s() {
    let mock = mock().await;
    let receiver = Receiver::start(&[500, 500], 200).await;
    let bridge = bridge(&mock, &sqlite_url("signed"), &receiver).await;
    let sid = greeting_call(&bridge, &mock).await;

    let received = receiver.wait_delivered().await;
    let answered: Vec<u16> = received.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 500, 200]);
    for (n, r) in received.iter().enumerate() {
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["idempotency-key"], sid);
        assert_eq!(r.headers["x-phone-agent-attempt"], (n + 1).to_string());
        let signature = &r.headers["x-phone-agent-signature"];
        assert!(verify(SECRET, signature, &r.body), "{signature}");
        assert!(!verify("another-secret", signature, &r.body));
        let mut tampered = r.body.clone();
        tampered[0] = b' ';
        assert!(!verify(SECRET, signature, &tampered));
    }
    // The body is the stored record, as the API serves it.
    let posted: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(posted["call_sid"], sid);
    assert_eq!(posted["end_reason"], "caller_hung_up");
    assert_eq!(posted["transcript"][0]["text"], "Hello from Acme.");
    assert_eq!(posted, api_record(&bridge, &sid).await);
    let counts = bridge.handle.webhook_counts().unwrap();
    assert_eq!((counts.delivered, counts.retries, counts.failed), (1, 2, 0));
    bridge.finish().await;
    // Delivered once: nothing more arrives (the outbox row is marked delivered).
    assert_eq!(receiver.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_given_up_after_max_attempts_and_counted() {
    let mock = mock().await;
    let receiver = Receiver::start(&[], 500).await;
    let url = receiver.url();
    let db = sqlite_url("give-up");
    let bridge = Bridge::start(
        &mock.base_url(),
        &[
            ("PHONE_AGENT_DATABASE__URL", db.as_str()),
            ("PHONE_AGENT_WEBHOOKS__SIGNING_SECRET", SECRET),
            ("PHONE_AGENT_CALL_WEBHOOK__URL", &url),
            ("PHONE_AGENT_CALL_WEBHOOK__RETRY_INITIAL_MS", "20"),
            ("PHONE_AGENT_CALL_WEBHOOK__MAX_ATTEMPTS", "3"),
        ],
    )
    .await;
    greeting_call(&bridge, &mock).await;
    let deadline = Instant::now() + WAIT;
    while bridge.handle.webhook_counts().unwrap().failed == 0 {
        assert!(Instant::now() < deadline, "never given up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let counts = bridge.handle.webhook_counts().unwrap();
    assert_eq!((counts.delivered, counts.retries, counts.failed), (0, 2, 1));
    assert_eq!(receiver.received().len(), 3);
    bridge.finish().await;
}

/// The server stops while the receiver refuses (503); the next start delivers the record.
async fn delivered_after_a_restart(database_url: &str) {
    let mock = mock().await;
    let receiver = Receiver::start(&[], 503).await;
    let first = bridge(&mock, database_url, &receiver).await;
    let sid = greeting_call(&first, &mock).await;
    receiver
        .wait_until(|r| !r.is_empty(), "attempt while the receiver is down")
        .await;
    first.finish().await;
    let refused = receiver.received().len();
    assert!(receiver.received().iter().all(|r| r.answered == 503));

    receiver.answer_from_now(200);
    let second = bridge(&mock, database_url, &receiver).await;
    let received = receiver.wait_delivered().await;
    assert_eq!(received.len(), refused + 1, "{received:?}");
    let delivery = received.last().unwrap();
    assert_eq!(delivery.headers["idempotency-key"], sid);
    assert!(verify(
        SECRET,
        &delivery.headers["x-phone-agent-signature"],
        &delivery.body
    ));
    let posted: Value = serde_json::from_slice(&delivery.body).unwrap();
    assert_eq!(posted["call_sid"], sid);
    assert_eq!(posted, api_record(&second, &sid).await);
    assert_eq!(second.handle.webhook_counts().unwrap().delivered, 1);
    second.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_delivered_after_a_restart_in_sqlite() {
    delivered_after_a_restart(&sqlite_url("restart")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_is_delivered_after_a_restart_in_postgres() {
    let Some(pg) = PgCluster::start_or_skip("call webhook across a restart").await else {
        return;
    };
    let url = pg.create_database("call_webhook_restart").await.unwrap();
    delivered_after_a_restart(&url).await;
}
