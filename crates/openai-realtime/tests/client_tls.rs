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
