//! The metrics listener: `GET /metrics` on its own address (`metrics.bind`, default
//! `127.0.0.1:9090`), never on the call port, so the public port exposes no metrics.
//!
//! | route | methods | answer |
//! |---|---|---|
//! | `/metrics` | `GET` | Prometheus text |
//!
//! Anything else is 404; `/metrics` with another method is 405. The listener runs until the
//! server has finished shutting down (metrics stay readable while calls drain).

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::routes::{self, Body};

/// Binds `addr` for the metrics listener (synchronously, so a bad address fails the start).
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "could not bind the metrics listener on {addr} (metrics.bind, \
                 PHONE_AGENT_METRICS__BIND; \"off\" disables it): {e}"
            ),
        )
    })?;
    listener.set_nonblocking(true)?;
    TcpListener::from_std(listener)
}

/// Serves `/metrics` on `listener` until `stop` is cancelled.
pub(crate) async fn run(listener: TcpListener, handle: PrometheusHandle, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let handle = handle.clone();
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        let service = service_fn(move |req| {
                            let response = answer(&handle, &req);
                            async move { Ok::<_, std::convert::Infallible>(response) }
                        });
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(std::time::Duration::from_secs(10))
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        tokio::select! {
                            result = conn.as_mut() => {
                                if let Err(e) = result {
                                    tracing::debug!(error = %e, "metrics connection error");
                                }
                            }
                            _ = stop.cancelled() => {}
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}

fn answer(handle: &PrometheusHandle, req: &Request<Incoming>) -> Response<Body> {
    match (req.uri().path(), req.method()) {
        ("/metrics", &Method::GET) => {
            let mut response =
                Response::new(Body::new(Bytes::from(crate::telemetry::render(handle))));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        ("/metrics", _) => {
            let mut response = routes::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET"));
            response
        }
        _ => routes::text(StatusCode::NOT_FOUND, "not found\n"),
    }
}
