//! `hf_request`: a request in flight from `hf_send_data_nb` (or an endpoint), completed by
//! `hf_request_test`, `hf_request_wait`, `hf_request_wait_any` or `hf_request_wait_all`, or
//! abandoned by `hf_request_cancel`, and released by `hf_request_free`.

use super::protocol::hf_bytes;
use super::status::{hf_status, HF_ERR_TIMEOUT, HF_OK};
use super::{boundary, lib, mut_arg, FfiError, FfiResult};
use crate::error::Error;
use crate::fabric::{wait_all_of, wait_any_of, Completion, Request};
use std::time::Duration;

/// A request in flight (`hf_send_data_nb`, `hf_endpoint_send_data_nb`): complete it with
/// `hf_request_test`, `hf_request_wait`, `hf_request_wait_any` or `hf_request_wait_all`, or
/// abandon it with `hf_request_cancel`; then free it with `hf_request_free`. One thread at a
/// time.
pub struct hf_request {
    pub(crate) request: Request,
}

impl hf_request {
    /// The handle of `request`, for C.
    pub(crate) fn new(request: Request) -> *mut hf_request {
        Box::into_raw(Box::new(hf_request { request }))
    }
}

/// The `*index` of `hf_request_wait_any` when no request completed.
pub const HF_INDEX_NONE: usize = -1isize as usize;

/// Progresses a request without blocking. `*done` becomes true once it completed; the
/// call then returns the request's outcome and, on success, stores the response in
/// `*response`. A completed request gives `HF_ERR_INVALID_ARGUMENT` when tested again, a
/// cancelled one `HF_ERR_INVALID_ARGUMENT` ("cancelled").
///
/// Progress: without background services, each call makes one pass of the engine (so a
/// loop of tests completes the request; handlers run in the calling thread).
///
/// # Safety
/// `request` is a live handle; `done` and `response` point to writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_request_test(
    request: *mut hf_request,
    done: *mut bool,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(request, "request") }?;
        // SAFETY: as the caller promised.
        let done = unsafe { mut_arg(done, "done") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        lib(r.request.check_process())?;
        if !r.request.is_pending() {
            return Err(r.request.finished().into());
        }
        match r.request.test() {
            None => {
                *done = false;
                Ok(())
            }
            Some(result) => {
                *done = true;
                *out = hf_bytes::from_vec(lib(result)?);
                Ok(())
            }
        }
    })
}

/// Blocks until the request completes; returns its outcome and, on success, stores the
/// response in `*response`. The request ends at its send timeout (`HF_ERR_TIMEOUT`); a
/// completed or cancelled request gives `HF_ERR_INVALID_ARGUMENT`.
///
/// Progress: without background services the call drives the engine while it waits
/// (handlers run in the calling thread).
///
/// # Safety
/// `request` is a live handle; `response` points to writable memory for an `hf_bytes`.
#[no_mangle]
pub unsafe extern "C" fn hf_request_wait(
    request: *mut hf_request,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(request, "request") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        *out = hf_bytes::from_vec(lib(r.request.wait_mut())?);
        Ok(())
    })
}

/// The `count` entries at `requests` as requests to wait on (NULL entries stay empty).
/// `HF_ERR_INVALID_ARGUMENT` when one request appears twice (it would be waited on twice).
///
/// # Safety
/// `requests` is NULL with `count` 0, or points to `count` readable pointers, each NULL or
/// a live handle that no other thread uses during the call.
unsafe fn request_list<'a>(
    requests: *mut *mut hf_request,
    count: usize,
) -> FfiResult<Vec<Option<&'a mut Request>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if requests.is_null() {
        return Err(FfiError::null("requests"));
    }
    check_count(count, std::mem::size_of::<hf_bytes>())?;
    // SAFETY: `count` readable pointers by the caller's contract; the count fits an
    // allocation (checked above against the largest element of the three arrays).
    let entries = unsafe { std::slice::from_raw_parts(requests, count) };
    let mut seen: Vec<(usize, usize)> = entries
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_null())
        .map(|(i, &p)| (p as usize, i))
        .collect();
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::InvalidArgument(format!(
            "requests[{}] and requests[{}] are the same request",
            w[0].1.min(w[1].1),
            w[0].1.max(w[1].1)
        ))
        .into());
    }
    Ok(entries
        .iter()
        // SAFETY: each non-NULL entry is a live handle (the caller's contract), and no two
        // entries are the same (checked above), so the references do not alias.
        .map(|&p| unsafe { p.as_mut() }.map(|r| &mut r.request))
        .collect())
}

/// `InvalidArgumentError` when `count` elements of `size` bytes cannot be an array.
fn check_count(count: usize, size: usize) -> FfiResult<()> {
    if count > isize::MAX as usize / size.max(1) {
        return Err(Error::InvalidArgument(format!("count {count} is not an array length")).into());
    }
    Ok(())
}

/// Waits until one of the `count` requests at `requests` completes, like `MPI_Waitany`:
/// NULL entries, and requests that already completed or were cancelled, are skipped. Writes
/// the position of the one that completed to `*index` and returns its outcome; on success
/// its response goes to `*response` (release it with `hf_bytes_free`). That request is then
/// completed: free it with `hf_request_free` (testing or waiting on it again gives
/// `HF_ERR_INVALID_ARGUMENT`); the others stay as they were.
///
/// `timeout_ms` bounds the call: 0 makes it one look (like `MPI_Testany`), `UINT64_MAX`
/// leaves the bound to each request's own send timeout, at which that request completes
/// with `HF_ERR_TIMEOUT` as its outcome. `*index` is `HF_INDEX_NONE` when no request
/// completed: the call returns `HF_ERR_TIMEOUT` if none did within `timeout_ms` (they stay
/// pending), `HF_ERR_INVALID_ARGUMENT` if no entry is pending or one request appears twice.
/// So `HF_ERR_TIMEOUT` with `*index != HF_INDEX_NONE` is that request's own timeout.
///
/// Progress: without background services the call drives the engines of the requests'
/// protocols while it waits (handlers of their nodes run in the calling thread).
///
/// # Safety
/// `requests` points to `count` readable pointers (or is NULL with `count` 0), each NULL or
/// a live handle no other thread uses during the call; `index` and `response` point to
/// writable memory.
#[no_mangle]
pub unsafe extern "C" fn hf_request_wait_any(
    requests: *mut *mut hf_request,
    count: usize,
    timeout_ms: u64,
    index: *mut usize,
    response: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let index = unsafe { mut_arg(index, "index") }?;
        // SAFETY: as the caller promised.
        let out = unsafe { mut_arg(response, "response") }?;
        *index = HF_INDEX_NONE;
        // SAFETY: as the caller promised.
        let mut list = unsafe { request_list(requests, count) }?;
        let (i, outcome) = lib(wait_any_of(&mut list, Duration::from_millis(timeout_ms)))?;
        *index = i;
        *out = hf_bytes::from_vec(lib(outcome)?);
        Ok(())
    })
}

/// Waits until every pending request among the `count` at `requests` completes, like
/// `MPI_Waitall`, for at most `timeout_ms` (`UINT64_MAX`: as long as the requests' own send
/// timeouts). For each request pending at the call, `statuses[i]` gets its outcome and
/// `responses[i]` its response on success, a zeroed `hf_bytes` otherwise (release each with
/// `hf_bytes_free`). NULL entries, and requests that already completed or were cancelled,
/// are skipped and their `statuses[i]` and `responses[i]` left as they are: calling again
/// after a timeout completes the arrays of the first call.
///
/// Returns `HF_OK` when every request completed successfully, else the status of the first
/// entry (in array order) that did not; `statuses` tells each. A request still in flight
/// when `timeout_ms` passes gets `HF_ERR_TIMEOUT` and stays pending (wait again, cancel it
/// or free it); one whose own send timeout passed also gets `HF_ERR_TIMEOUT` but is
/// completed (`hf_request_test` then gives `HF_ERR_INVALID_ARGUMENT`). With nothing
/// pending the call returns `HF_OK` at once. `HF_ERR_INVALID_ARGUMENT`, with nothing
/// written, when one request appears twice.
///
/// Progress: as `hf_request_wait_any`.
///
/// # Safety
/// `requests` as for `hf_request_wait_any`; `statuses` and `responses` point to `count`
/// writable elements each (or are NULL with `count` 0).
#[no_mangle]
pub unsafe extern "C" fn hf_request_wait_all(
    requests: *mut *mut hf_request,
    count: usize,
    timeout_ms: u64,
    statuses: *mut hf_status,
    responses: *mut hf_bytes,
) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let mut list = unsafe { request_list(requests, count) }?;
        if count > 0 && statuses.is_null() {
            return Err(FfiError::null("statuses"));
        }
        if count > 0 && responses.is_null() {
            return Err(FfiError::null("responses"));
        }
        let timeout = Duration::from_millis(timeout_ms);
        let completions = lib(wait_all_of(&mut list, timeout))?;
        let mut first: Option<FfiError> = None;
        for (i, c) in completions.into_iter().enumerate() {
            let (status, bytes) = match c {
                Completion::Skipped => continue,
                Completion::Done(Ok(v)) => (HF_OK, hf_bytes::from_vec(v)),
                Completion::Done(Err(e)) => {
                    let e = FfiError::from(e);
                    let status = e.status;
                    first.get_or_insert(e);
                    (status, hf_bytes::from_vec(Vec::new()))
                }
                Completion::Pending => {
                    let e = FfiError {
                        status: HF_ERR_TIMEOUT,
                        message: format!(
                            "requests[{i}] did not complete within {timeout_ms} ms (it is \
                             still pending)"
                        ),
                    };
                    let status = e.status;
                    first.get_or_insert(e);
                    (status, hf_bytes::from_vec(Vec::new()))
                }
            };
            // SAFETY: i < count, and `statuses` and `responses` hold `count` writable
            // elements each (the caller's contract; the count was checked to fit).
            unsafe {
                statuses.add(i).write(status);
                responses.add(i).write(bytes);
            }
        }
        first.map_or(Ok(()), Err)
    })
}

/// Abandons a pending request, like `MPI_Cancel`: its response, if one comes, is dropped;
/// `hf_request_test` and `hf_request_wait` then return `HF_ERR_INVALID_ARGUMENT`
/// ("cancelled"), and `hf_request_wait_any` / `hf_request_wait_all` skip it. The receiver
/// may already have handled the message: cancelling only stops waiting for the answer.
/// Cancelling a request that completed or was cancelled does nothing. Free the request
/// with `hf_request_free` as usual.
///
/// # Safety
/// `request` is a live handle no other thread uses during the call.
#[no_mangle]
pub unsafe extern "C" fn hf_request_cancel(request: *mut hf_request) -> hf_status {
    boundary(|| {
        // SAFETY: as the caller promised.
        let r = unsafe { mut_arg(request, "request") }?;
        lib(r.request.cancel()).map(drop)
    })
}

/// Releases a request (an unfinished one is abandoned: its late response is dropped). NULL
/// is ignored.
///
/// # Safety
/// `request` is NULL or a handle not freed before.
#[no_mangle]
pub unsafe extern "C" fn hf_request_free(request: *mut hf_request) {
    // SAFETY: as the caller promised (a handle of this library, or NULL).
    unsafe { super::free_box(request) }
}
