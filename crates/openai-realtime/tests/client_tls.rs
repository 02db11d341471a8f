//! `wss://`: rustls with the ring provider passed explicitly, hostname verification, and
//! certificate failures being permanent. The test certificates in `client_support/tls` are a
//! throwaway CA and a `localhost`/`127.0.0.1` leaf made with openssl for these tests only.
#![cfg(feature = "client")]

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::{KEY, endpoint, upgrade};
use futures_util::{SinkExt, StreamExt};
use openai_realtime::client::{ConnectErrorKind, Incoming, RetryPolicy, Target};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::Message;

const CA: &[u8] = include_bytes!("client_support/tls/ca.pem");
const LEAF: &[u8] = include_bytes!("client_support/tls/localhost.pem");
const LEAF_KEY: &[u8] = include_bytes!("client_support/tls/localhost.key");

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn acceptor() -> TlsAcceptor {
    let chain = vec![CertificateDer::from_pem_slice(LEAF).expect("leaf PEM")];
    let key = PrivateKeyDer::from_pem_slice(LEAF_KEY).expect("key PEM");
    let config = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2/1.3")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("valid certificate and key");
    TlsAcceptor::from(Arc::new(config))
}

fn trusting_test_ca() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA).expect("CA PEM"))
        .expect("valid CA");
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2/1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

#[tokio::test]
async fn wss_with_a_trusted_private_ca_connects_and_round_trips() {
    assert!(
        rustls::crypto::CryptoProvider::get_default().is_none(),
        "no process-wide provider here"
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let acceptor = acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let tls = acceptor.accept(tcp).await.expect("TLS handshake");
        let (mut ws, seen) = upgrade(tls).await;
        ws.send(Message::text(r#"{"type":"session.started"}"#))
            .await
            .expect("send");
        let reply = ws.next().await.expect("a message").expect("valid");
        (seen, reply)
    });

    // `localhost` exercises hostname verification against the certificate's DNS name.
    let endpoint = endpoint(&format!("https://localhost:{port}/v1"))
        .tls_config(trusting_test_ca())
        .build()
        .expect("valid endpoint");
    assert!(endpoint.base_url().starts_with("wss://"));
    let mut connection = endpoint
        .connect(&Target::live())
        .await
        .expect("wss connect");
    assert_eq!(connection.info().tcp_nodelay(), Some(true));

    match connection.recv().await {
        Some(Ok(Incoming::Text(text))) => {
            assert_eq!(text.as_str(), r#"{"type":"session.started"}"#)
        }
        other => panic!("expected a text message, got {other:?}"),
    }
    connection
        .send_text(r#"{"type":"session.close"}"#)
        .await
        .expect("send");

    let (seen, reply) = server.await.expect("server task");
    assert_eq!(seen.path_and_query, "/v1/live/sessions");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(reply, Message::text(r#"{"type":"session.close"}"#));
}

#[tokio::test(start_paused = true)]
async fn an_untrusted_certificate_fails_at_once_without_retries() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let acceptor = acceptor();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        // The client aborts the handshake; the error itself is not what this test is about.
        let _ = acceptor.accept(tcp).await;
        listener
    });

    // The default TLS configuration (webpki roots, explicit ring provider) does not trust the
    // test CA.
    let retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(1),
        jitter: false,
    };
    let endpoint = endpoint(&format!("https://localhost:{port}/v1"))
        .retry(retry)
        .build()
        .expect("valid endpoint");
    let err = endpoint
        .connect(&Target::realtime("gpt-realtime"))
        .await
        .expect_err("untrusted");

    assert_eq!(err.attempts(), 1, "certificate errors are permanent");
    assert!(!err.is_transient());
    assert!(
        matches!(err.kind(), ConnectErrorKind::Handshake(_)),
        "{err:?}"
    );
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );

    let listener = server.await.expect("server task");
    let second = tokio::time::timeout(Duration::from_secs(60), listener.accept()).await;
    assert!(second.is_err(), "no second attempt");
}

/// Binds a loopback listener for a `wss://localhost:<port>/v1` endpoint trusting the test CA.
async fn wss_listener() -> (TcpListener, openai_realtime::client::Endpoint) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let endpoint = endpoint(&format!("https://localhost:{port}/v1"))
        .tls_config(trusting_test_ca())
        .build()
        .expect("valid endpoint");
    (listener, endpoint)
}

/// Accepts one connection: TLS, then the upgrade.
async fn accept_wss(
    listener: &TcpListener,
) -> tokio_tungstenite::WebSocketStream<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let (tcp, _) = listener.accept().await.expect("accept");
    let tls = acceptor().accept(tcp).await.expect("TLS handshake");
    upgrade(tls).await.0
}

/// Message `i` of a bulk transfer: a numbered prefix, then 64 KiB.
fn bulk(i: usize) -> String {
    format!("{i:05}:{}", "x".repeat(64 * 1024))
}

#[tokio::test]
async fn wss_writes_wait_for_a_server_that_stops_reading_then_arrive_whole_and_in_order() {
    let (listener, endpoint) = wss_listener().await;
    let (start_reading, reading) = tokio::sync::oneshot::channel::<usize>();
    let large = format!("large:{}", "y".repeat(1 << 20));
    let expected_large = large.clone();
    let server = tokio::spawn(async move {
        let mut ws = accept_wss(&listener).await;
        // Nothing is read until the client's writes are stuck.
        let queued = reading.await.expect("the client says how many it queued");
        for i in 0..queued {
            match ws.next().await.expect("a message").expect("valid") {
                Message::Text(text) => assert!(text.as_str() == bulk(i), "message {i} differs"),
                other => panic!("unexpected {other:?}"),
            }
        }
        let last = ws.next().await.expect("the large message").expect("valid");
        assert!(
            last == Message::text(expected_large),
            "the large message differs"
        );
        ws.send(Message::text("done")).await.expect("send");
        queued
    });

    let mut connection = endpoint
        .connect(&Target::live())
        .await
        .expect("wss connect");
    // Queue 64 KiB messages until the sockets (the server's receive buffer, ours to send, and
    // rustls's records) take no more.
    let waker = futures_util::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut queued = 0;
    loop {
        connection.queue_text(bulk(queued));
        queued += 1;
        if connection.poll_flush(&mut cx).is_pending() {
            break;
        }
        assert!(queued < 2_000, "the socket never pushed back");
    }
    start_reading.send(queued).expect("server waiting");
    std::future::poll_fn(|cx| connection.poll_flush(cx))
        .await
        .expect("flushed once the server reads");
    // Written around the write buffer, behind everything queued.
    connection
        .send_text_unbuffered(large)
        .await
        .expect("unbuffered send");
    match connection.recv().await {
        Some(Ok(Incoming::Text(text))) => assert_eq!(text.as_str(), "done"),
        other => panic!("expected the server's reply, got {other:?}"),
    }
    assert_eq!(server.await.expect("server task"), queued);
    assert!(queued > 1, "the test needs writes that blocked: {queued}");
}

#[tokio::test]
async fn wss_reads_megabytes_while_writing_megabytes() {
    let (listener, endpoint) = wss_listener().await;
    const N: usize = 64;
    let server = tokio::spawn(async move {
        let ws = accept_wss(&listener).await;
        let (mut tx, mut rx) = ws.split();
        let send = async {
            for i in 0..N {
                tx.send(Message::text(bulk(i))).await.expect("send");
            }
            tx
        };
        let receive = async {
            for i in 0..N {
                match rx.next().await.expect("a message").expect("valid") {
                    Message::Text(text) => assert!(text.as_str() == bulk(i), "up {i} differs"),
                    other => panic!("unexpected {other:?}"),
                }
            }
        };
        let (tx, ()) = tokio::join!(send, receive);
        tx
    });

    let connection = endpoint
        .connect(&Target::live())
        .await
        .expect("wss connect");
    let (mut sender, mut receiver) = connection.split();
    let send = async {
        for i in 0..N {
            sender.send_text(bulk(i)).await.expect("send");
        }
    };
    let receive = async {
        for i in 0..N {
            match receiver.recv().await {
                Some(Ok(Incoming::Text(text))) => {
                    assert!(text.as_str() == bulk(i), "down {i} differs")
                }
                other => panic!("expected message {i}, got {other:?}"),
            }
        }
    };
    tokio::join!(send, receive);
    let _server_half = server.await.expect("server task");
}

#[tokio::test]
async fn wss_a_server_that_vanishes_is_an_error_then_the_end() {
    let (listener, endpoint) = wss_listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_wss(&listener).await;
        ws.send(Message::text("last words")).await.expect("send");
        // Dropped: TCP ends with neither a close frame nor TLS close_notify.
    });
    let mut connection = endpoint
        .connect(&Target::live())
        .await
        .expect("wss connect");
    server.await.expect("server task");
    match connection.recv().await {
        Some(Ok(Incoming::Text(text))) => assert_eq!(text.as_str(), "last words"),
        other => panic!("expected the last message, got {other:?}"),
    }
    match connection.recv().await {
        Some(Err(err)) => assert!(!err.is_closed(), "{err:?}"),
        other => panic!("expected an error, got {other:?}"),
    }
    assert!(connection.recv().await.is_none());
}

#[tokio::test]
async fn wss_a_close_handshake_ends_cleanly_without_close_notify() {
    let (listener, endpoint) = wss_listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_wss(&listener).await;
        let reply = ws.next().await;
        assert!(
            matches!(reply, Some(Ok(Message::Close(Some(_))))),
            "{reply:?}"
        );
        // tokio-tungstenite answered our close; dropping ends TCP without close_notify.
    });
    let mut connection = endpoint
        .connect(&Target::live())
        .await
        .expect("wss connect");
    let report = connection
        .close_with_reason(1000, "call ended", Duration::from_secs(5))
        .await
        .expect("close");
    assert!(
        matches!(
            report.end,
            openai_realtime::client::CloseEnd::PeerClosed(_)
                | openai_realtime::client::CloseEnd::SocketEnded
        ),
        "{:?}",
        report.end
    );
    server.await.expect("server task");
    assert!(connection.recv().await.is_none(), "the end, not an error");
}

/// Forwards one connection from `listener` to `upstream`: the client's bytes as they come, the
/// server's one byte at a time (each its own TCP segment), so every TLS record reaches the
/// client in pieces.
async fn trickling_proxy(listener: TcpListener, upstream: std::net::SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (client, _) = listener.accept().await.expect("accept");
    let server = tokio::net::TcpStream::connect(upstream)
        .await
        .expect("connect upstream");
    client.set_nodelay(true).expect("nodelay");
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut buf = [0u8; 4096];
    loop {
        let n = match server_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for byte in &buf[..n] {
            if client_write.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }
    let _ = client_write.shutdown().await;
    let _ = up.await;
}

#[tokio::test]
async fn wss_records_arriving_byte_by_byte_are_read_whole() {
    let upstream = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let upstream_addr = upstream.local_addr().expect("address");
    let (proxy, endpoint) = wss_listener().await;
    let server = tokio::spawn(async move {
        let mut ws = accept_wss(&upstream).await;
        for word in ["one", "two", "three"] {
            ws.send(Message::text(word)).await.expect("send");
        }
        let reply = ws.next().await.expect("a message").expect("valid");
        assert_eq!(reply, Message::text("got three"));
    });
    tokio::spawn(trickling_proxy(proxy, upstream_addr));

    // The handshake's records trickle in too. A short read that left the socket's readiness
    // set or cleared at the wrong moment would hang here: the timeout turns that into a
    // failure.
    let words = tokio::time::timeout(Duration::from_secs(30), async {
        let mut connection = endpoint
            .connect(&Target::live())
            .await
            .expect("wss connect");
        let mut words = Vec::new();
        while words.len() < 3 {
            match connection.recv().await {
                Some(Ok(Incoming::Text(text))) => words.push(text.as_str().to_owned()),
                other => panic!("expected a message, got {other:?}"),
            }
        }
        connection.send_text("got three").await.expect("send");
        words
    })
    .await
    .expect("every record read, none waited for in vain");
    assert_eq!(words, ["one", "two", "three"]);
    server.await.expect("server task");
}
