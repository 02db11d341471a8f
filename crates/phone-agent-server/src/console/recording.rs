//! `GET /console/calls/{sid}/recording.wav`: a call's recording, for the call page's player.
//!
//! The file is named only by the stored record (`recording_path`, never by the request) and
//! served only when it resolves, symlinks followed, to a regular file inside the configured
//! `recording.dir`; anything else, like a call without a recording or a file since deleted,
//! is a 404. The session check and the security headers are the console's (see [`super`]).

use std::path::{Path, PathBuf};

use http::{HeaderValue, Response, StatusCode, header};

use crate::routes::{self, Body};
use crate::server::AppState;

/// The canonical path of `file` when it is a regular file inside `dir` (both resolved).
pub(crate) fn inside(dir: &Path, file: &Path) -> Option<PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let file = std::fs::canonicalize(file).ok()?;
    (file.starts_with(&dir) && file != dir && file.is_file()).then_some(file)
}

fn not_found() -> Response<Body> {
    routes::text(StatusCode::NOT_FOUND, "no recording\n")
}

/// Serves the recording of call `sid` (the caller holds a console session).
pub(crate) async fn serve(state: &AppState, sid: &str) -> Response<Body> {
    if !super::valid_sid(sid) {
        return not_found();
    }
    let Some(Some(db)) = state.store.as_ref().map(|s| s.db()) else {
        return routes::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "call records are off or the database is not reachable yet\n",
        );
    };
    let stored = match db.get(sid).await {
        Ok(Some(stored)) => stored,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "console: reading a call for its recording failed");
            return routes::text(StatusCode::SERVICE_UNAVAILABLE, "database error\n");
        }
    };
    let Some(path) = stored.json["recording_path"].as_str().map(PathBuf::from) else {
        return not_found();
    };
    let dir = state.config.recording.dir.clone();
    let checked = tokio::task::spawn_blocking(move || inside(&dir, &path))
        .await
        .ok()
        .flatten();
    let Some(file) = checked else {
        tracing::warn!(
            call_sid = sid,
            "console: the call's recording is missing or outside recording.dir"
        );
        return not_found();
    };
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::warn!(call_sid = sid, error = %e, "console: reading a recording failed");
            return not_found();
        }
    };
    let mut r = routes::with_body(StatusCode::OK, "audio/wav", bytes);
    // `sid` is ASCII alphanumeric (checked above): a safe header value and file name.
    if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"call-{sid}.wav\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_the_recording_dir() {
        let base = std::env::temp_dir().join(format!("console-recording-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = base.join("recordings");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("CA1.wav"), b"RIFF").unwrap();
        std::fs::write(dir.join("sub/CA2.wav"), b"RIFF").unwrap();
        std::fs::write(base.join("secret.wav"), b"secret").unwrap();
        std::fs::create_dir_all(base.join("recordings-other")).unwrap();
        std::fs::write(base.join("recordings-other/CA3.wav"), b"RIFF").unwrap();

        let canonical = std::fs::canonicalize(&dir).unwrap();
        assert_eq!(
            inside(&dir, &dir.join("CA1.wav")),
            Some(canonical.join("CA1.wav"))
        );
        assert_eq!(
            inside(&dir, &dir.join("sub/CA2.wav")),
            Some(canonical.join("sub/CA2.wav"))
        );
        // Outside, by a plain path, by `..`, by a sibling sharing the prefix, the dir itself.
        assert_eq!(inside(&dir, &base.join("secret.wav")), None);
        assert_eq!(inside(&dir, &dir.join("../secret.wav")), None);
        assert_eq!(inside(&dir, &dir.join("sub/../../secret.wav")), None);
        assert_eq!(inside(&dir, &base.join("recordings-other/CA3.wav")), None);
        assert_eq!(inside(&dir, &dir), None);
        assert_eq!(inside(&dir, Path::new("/etc/passwd")), None);
        // Gone.
        assert_eq!(inside(&dir, &dir.join("CA9.wav")), None);
        // A link inside the dir pointing out of it.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(base.join("secret.wav"), dir.join("link.wav")).unwrap();
            assert_eq!(inside(&dir, &dir.join("link.wav")), None);
        }
        // No recording dir at all.
        assert_eq!(inside(&base.join("missing"), &dir.join("CA1.wav")), None);
        let _ = std::fs::remove_dir_all(&base);
    }
}
