//! One file's HTTP answer for the boot port: `Last-Modified` with
//! `If-Modified-Since` / `If-Unmodified-Since` / `If-Range`, a single byte
//! `Range` (206, or 416 when it lies past the end), HEAD, and the body.
//!
//! A GET's response offers the file's range to the connection
//! (`super::http1::SendFile`), which sends it from the page cache with
//! sendfile(2); the body, the same bytes read from the file in large
//! chunks, is for any other server.
//!
//! A request for several ranges gets the whole file (200), as RFC 9110
//! allows: boot clients never ask for several, and a multipart answer would
//! be the one copy of the file made per request.

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::http1::SendFile;
use crate::filecache::{Opened, Source};

/// Slices handed to the connection: large enough that per-chunk costs
/// vanish, small enough that an aborted download's byte count (the boot
/// timeline's) is close to what was sent.
const CHUNK: usize = 256 * 1024;

/// What a request gets, from its headers and the file's length and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Whole,
    /// Inclusive byte offsets.
    Part(u64, u64),
    Unsatisfiable,
    NotModified,
    PreconditionFailed,
}

pub fn answer(headers: &HeaderMap, len: u64, modified: Option<SystemTime>) -> Answer {
    // Dates on the wire have whole seconds.
    let modified = modified.map(|m| SystemTime::from(httpdate::HttpDate::from(m)));
    let date = |name| {
        let v = headers.get(name)?.to_str().ok()?;
        httpdate::parse_http_date(v).ok()
    };
    if let (Some(m), Some(since)) = (modified, date(header::IF_UNMODIFIED_SINCE)) {
        if m > since {
            return Answer::PreconditionFailed;
        }
    }
    if let (Some(m), Some(since)) = (modified, date(header::IF_MODIFIED_SINCE)) {
        if m <= since {
            return Answer::NotModified;
        }
    }
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Answer::Whole;
    };
    // If-Range with anything but the current Last-Modified: the file the
    // client has a part of is gone, so it gets the whole new one.
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        let same = modified
            .zip(date(header::IF_RANGE))
            .is_some_and(|(m, d)| m == d && if_range.to_str().is_ok());
        if !same {
            return Answer::Whole;
        }
    }
    byte_range(range, len)
}

/// A `Range` header's single byte range against a file of `len` bytes;
/// anything that is not one well-formed byte range is ignored (the whole
/// file), as RFC 9110 lets a server do.
fn byte_range(value: &str, len: u64) -> Answer {
    let Some((unit, spec)) = value.split_once('=') else {
        return Answer::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Answer::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Answer::Whole;
    };
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first, last) {
        // The last n bytes.
        ("", n) => match num(n) {
            None => Answer::Whole,
            Some(0) => Answer::Unsatisfiable,
            Some(_) if len == 0 => Answer::Unsatisfiable,
            Some(n) => Answer::Part(len - n.min(len), len - 1),
        },
        (a, "") => match num(a) {
            None => Answer::Whole,
            Some(a) if a >= len => Answer::Unsatisfiable,
            Some(a) => Answer::Part(a, len - 1),
        },
        (a, b) => match (num(a), num(b)) {
            (Some(a), Some(b)) if a <= b => {
                if a >= len {
                    Answer::Unsatisfiable
                } else {
                    Answer::Part(a, b.min(len - 1))
                }
            }
            _ => Answer::Whole,
        },
    }
}

/// The response for `file` to a GET or HEAD with `headers`.
pub async fn respond(file: Opened, method: &Method, headers: &HeaderMap) -> Response {
    let mut head = HeaderMap::new();
    head.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    head.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(m) = file.modified {
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(m)) {
            head.insert(header::LAST_MODIFIED, v);
        }
    }
    let len = file.len;
    let (status, start, end) = match answer(headers, len, file.modified) {
        Answer::NotModified => return (StatusCode::NOT_MODIFIED, head).into_response(),
        Answer::PreconditionFailed => {
            return (StatusCode::PRECONDITION_FAILED, head).into_response()
        }
        Answer::Unsatisfiable => {
            head.insert(header::CONTENT_RANGE, value(format!("bytes */{len}")));
            return (StatusCode::RANGE_NOT_SATISFIABLE, head).into_response();
        }
        // `end` is exclusive from here on.
        Answer::Whole => (StatusCode::OK, 0, len),
        Answer::Part(a, b) => {
            head.insert(header::CONTENT_RANGE, value(format!("bytes {a}-{b}/{len}")));
            (StatusCode::PARTIAL_CONTENT, a, b + 1)
        }
    };
    // Set here, not left to the body: the body is a stream (so its bytes
    // are counted as sent), and HEAD has none.
    head.insert(header::CONTENT_LENGTH, value((end - start).to_string()));
    if method == Method::HEAD {
        return (status, head, Body::empty()).into_response();
    }
    let offer = SendFile {
        file: file.file,
        offset: start,
        len: end - start,
        sent: Arc::default(),
    };
    let body = match file.body {
        Source::Memory(data) => memory_body(data.slice(start as usize..end as usize)),
        Source::File(f) => match file_body(f, start, end - start).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("boot HTTP: reading a file: {e}");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
    };
    let mut resp = (status, head, body).into_response();
    resp.extensions_mut().insert(offer);
    resp
}

fn value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Slices of the shared copy: no byte is copied in userspace.
fn memory_body(data: Bytes) -> Body {
    let chunks = (0..data.len())
        .step_by(CHUNK)
        .map(move |at| Ok::<_, std::io::Error>(data.slice(at..(at + CHUNK).min(data.len()))));
    Body::from_stream(futures_lite::stream::iter(chunks))
}

async fn file_body(mut f: tokio::fs::File, start: u64, len: u64) -> std::io::Result<Body> {
    f.seek(SeekFrom::Start(start)).await?;
    Ok(Body::from_stream(
        tokio_util::io::ReaderStream::with_capacity(f.take(len), CHUNK),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_body_is_the_offered_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        // From memory and from disk, as the cache hands them out.
        let cache = crate::filecache::FileCache::new(2 << 20, Arc::default());
        for opened in [
            cache.open(&path).await.unwrap(),
            cache.open_unread(&path).await.unwrap(),
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::RANGE, HeaderValue::from_static("bytes=1000-599999"));
            let resp = respond(opened, &Method::GET, &h).await;
            assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
            let offer = resp.extensions().get::<SendFile>().unwrap().clone();
            assert_eq!((offer.offset, offer.len), (1000, 599_000));
            let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .unwrap();
            assert!(body == data[1000..600_000], "{} bytes", body.len());
        }
    }

    fn range(v: &str, len: u64) -> Answer {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(v).unwrap());
        answer(&h, len, None)
    }

    #[test]
    fn single_ranges_and_their_edges() {
        use Answer::*;
        assert_eq!(range("bytes=0-99", 4096), Part(0, 99));
        assert_eq!(range("bytes=4000-", 4096), Part(4000, 4095));
        assert_eq!(range("bytes=-100", 4096), Part(3996, 4095));
        // Past the end is cut to the end; a suffix longer than the file is
        // the whole file, as a part.
        assert_eq!(range("bytes=4000-9999", 4096), Part(4000, 4095));
        assert_eq!(range("bytes=-9999", 4096), Part(0, 4095));
        assert_eq!(range("bytes=4095-4095", 4096), Part(4095, 4095));
        assert_eq!(range("BYTES = 1-2", 4096), Part(1, 2));
        // Nothing of the file in range.
        assert_eq!(range("bytes=4096-", 4096), Unsatisfiable);
        assert_eq!(range("bytes=5000-6000", 4096), Unsatisfiable);
        assert_eq!(range("bytes=-0", 4096), Unsatisfiable);
        assert_eq!(range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(range("bytes=-5", 0), Unsatisfiable);
        // Not one well-formed byte range: ignored.
        for v in [
            "bytes=0-1,5-6",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "items=0-1",
            "bytes 0-1",
            "bytes=99999999999999999999999-",
        ] {
            assert_eq!(range(v, 4096), Whole, "{v}");
        }
    }

    #[test]
    fn conditionals_compare_whole_seconds() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_400);
        let at =
            |secs: u64| httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        let with = |pairs: &[(header::HeaderName, String)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(k.clone(), HeaderValue::from_str(v).unwrap());
            }
            answer(&h, 10, Some(t))
        };
        use header::{IF_MODIFIED_SINCE as IMS, IF_RANGE, IF_UNMODIFIED_SINCE as IUS, RANGE};
        assert_eq!(with(&[(IMS, at(1_700_000_000))]), Answer::NotModified);
        assert_eq!(with(&[(IMS, at(1_699_999_999))]), Answer::Whole);
        assert_eq!(with(&[(IMS, "garbage".into())]), Answer::Whole);
        assert_eq!(
            with(&[(IUS, at(1_699_999_999))]),
            Answer::PreconditionFailed
        );
        assert_eq!(with(&[(IUS, at(1_700_000_000))]), Answer::Whole);
        let r = (RANGE, "bytes=2-3".to_string());
        assert_eq!(
            with(&[r.clone(), (IF_RANGE, at(1_700_000_000))]),
            Answer::Part(2, 3)
        );
        assert_eq!(
            with(&[r.clone(), (IF_RANGE, at(1_600_000_000))]),
            Answer::Whole
        );
        assert_eq!(with(&[r, (IF_RANGE, "\"etag\"".into())]), Answer::Whole);
    }
}
