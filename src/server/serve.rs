//! The daemon's connections: HTTP/1 on hyper, with every limit a port open to the network
//! needs (axum's own `serve` has none of them).
//!
//! - **Header timeout**: a request's head must arrive within it, counted from the moment
//!   the connection opens or the previous answer went out, so it also closes an idle
//!   keep-alive connection (hyper's `header_read_timeout`). Slowloris is cut off here.
//! - **Idle timeout**: a connection on which no byte moves for that long, while no request
//!   is being answered, is closed: a client that stops reading an answer cannot hold it.
//! - **Connection cap**: at most `max_connections` at once are served, fitted to the
//!   process's file limit. Past the cap, a small reserve of connections still answers the
//!   health probes (`/healthz`, `/readyz`; anything else is 503), one request each with a
//!   short header timeout, so the kubelet sees the daemon alive while the cap is reached.
//!   Past the reserve, a connection is closed as soon as it is accepted.
//! - **Parked while idle**: a keep-alive connection on which nothing moved for
//!   [`PARK_AFTER`] gives back hyper's buffers (8 KiB to read, 8 KiB to write) and waits
//!   with none until its client sends again (or its header timeout ends it, as before),
//!   then is served by hyper anew: 10,000 idle connections cost a few MB, not 100.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::ServiceExt;

/// Connections past the cap that still answer the health probes.
pub const PROBE_RESERVE: usize = 16;
/// The header timeout of a connection of the reserve (the kubelet sends its probe at once).
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// File descriptors the rest of the daemon needs besides its HTTP connections: the ledger
/// and its journal, the platform's connections, the rule file's watcher, the runtime.
const OTHER_FILES: u64 = 64;
/// How long a keep-alive connection stays still before it is parked.
const PARK_AFTER: Duration = Duration::from_millis(100);
/// How often a keep-alive connection that has not answered yet is looked at for parking.
const UNANSWERED_LOOK: Duration = Duration::from_millis(500);
/// How much a parked connection reads at once when its client sends again (on the stack
/// of that one poll; the bytes go on to hyper).
const PARKED_READ: usize = 1024;
/// How often a failure to accept (out of file descriptors, say) is logged at most.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits of the daemon's HTTP connections (`daemon.max_connections`,
/// `daemon.header_timeout`, `daemon.idle_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// What the port serves: everything, and the health probes alone (for the reserve).
#[derive(Clone)]
pub struct Routes {
    pub app: Router,
    pub probes: Router,
}

/// How many connections fit the process's file limit `files` (soft `RLIMIT_NOFILE`), with
/// the reserve and the rest of the daemon's files: `wanted` if it fits.
pub fn fit_to_file_limit(wanted: usize, files: u64) -> usize {
    let room = files.saturating_sub(OTHER_FILES + PROBE_RESERVE as u64);
    wanted
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

/// The soft limit of open files, raised to the hard limit first (as Go's runtime does):
/// an idle connection is a file.
fn file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    Some(limit.rlim_cur)
}

/// Serves `routes` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    routes: Routes,
    mut limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Some(files) = file_limit() {
        let fitted = fit_to_file_limit(limits.max_connections, files);
        if fitted < limits.max_connections {
            tracing::warn!(
                max_connections = limits.max_connections,
                fitted,
                file_limit = files,
                "daemon.max_connections lowered to fit the process's open-file limit"
            );
            limits.max_connections = fitted;
        }
    }
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(PROBE_RESERVE));
    let mut accept_errors = Throttle::new(ACCEPT_ERROR_LOG_EVERY);
    let mut full = Throttle::new(ACCEPT_ERROR_LOG_EVERY);
    let mut stopping = stop.clone();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    if let Some(more) = accept_errors.tick() {
                        tracing::warn!(error = %e, repeated = more, "cannot accept a connection");
                    }
                    // Out of file descriptors, most likely: let some close.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let _ = stream.set_nodelay(true);
        let (router, conn, permit) = if let Ok(p) = served.clone().try_acquire_owned() {
            let conn = ConnLimits {
                header_timeout: limits.header_timeout,
                idle_timeout: limits.idle_timeout,
                keep_alive: true,
            };
            (routes.app.clone(), conn, p)
        } else if let Ok(p) = reserve.clone().try_acquire_owned() {
            let conn = ConnLimits {
                header_timeout: limits.header_timeout.min(PROBE_HEADER_TIMEOUT),
                idle_timeout: limits.idle_timeout,
                keep_alive: false,
            };
            (routes.probes.clone(), conn, p)
        } else {
            if let Some(more) = full.tick() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    repeated = more,
                    "connection limit reached: a connection was closed unanswered"
                );
            }
            continue;
        };
        let stop = stop.clone();
        tokio::spawn(async move {
            connection(stream, Some(peer), router, conn, stop).await;
            drop(permit);
        });
    }
    drop(listener);
    // Every connection has finished when every permit is back.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = served.acquire_many(all).await;
    let _ = reserve.acquire_many(PROBE_RESERVE as u32).await;
    Ok(())
}

/// Resolves once `stop` says so (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, not held in a `select!`.
    let _ = stop.wait_for(|s| *s).await;
}

/// HTTP/1 with a header timeout on tokio's timer.
fn http1(header_timeout: Duration, keep_alive: bool) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(keep_alive);
    b
}

/// One connection's limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    /// Off for the reserve's connections: one request each.
    pub keep_alive: bool,
}

/// How hyper's part of a connection ended.
enum Served<S> {
    /// Over: the client left, an error, the daemon stopping, a timeout.
    Over,
    /// Parked: nothing moved for [`PARK_AFTER`]; the stream, and what hyper had read of
    /// it but not used.
    Parked(Watched<S>),
}

/// Serves one connection until it ends, is idle past its idle timeout, its head does not
/// arrive within the header timeout, or the daemon stops (then the request in flight, if
/// any, finishes first). While idle between requests it is parked without buffers.
pub(crate) async fn connection<S>(
    stream: S,
    peer: Option<SocketAddr>,
    router: Router,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    watched_connection(
        stream,
        peer,
        router,
        limits,
        stop,
        Arc::new(Activity::new()),
    )
    .await;
}

/// [`connection`], its activity seen from outside.
async fn watched_connection<S>(
    stream: S,
    peer: Option<SocketAddr>,
    router: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
    activity: Arc<Activity>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut io = Watched {
        inner: stream,
        activity: activity.clone(),
        unread: Bytes::new(),
    };
    let mut header_timeout = limits.header_timeout;
    loop {
        let service = Counted {
            router: router.clone(),
            peer,
            activity: activity.clone(),
        };
        match serve_until_parked(io, service, limits, header_timeout, &mut stop).await {
            Served::Over => return,
            Served::Parked(parked) => io = parked,
        }
        // Parked: only the stream, until its client sends, the head's time is up, or the
        // daemon stops. What arrives is handed to hyper, whose header timeout is what is
        // left of the one that runs since the last answer.
        let deadline = activity.last() + limits.header_timeout;
        activity.parked.store(true, Ordering::Relaxed);
        let read = tokio::select! {
            read = read_parked(&mut io.inner) => read,
            () = tokio::time::sleep_until(deadline) => return,
            () = stopped(&mut stop) => return,
        };
        activity.parked.store(false, Ordering::Relaxed);
        match read {
            Ok(bytes) if !bytes.is_empty() => {
                activity.touch();
                io.unread = bytes;
            }
            _ => return,
        }
        header_timeout = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
    }
}

/// hyper serves `io` until the connection is over, or parked after [`PARK_AFTER`] without
/// anything moving and no request being answered.
async fn serve_until_parked<S>(
    io: Watched<S>,
    service: Counted,
    limits: ConnLimits,
    header_timeout: Duration,
    stop: &mut watch::Receiver<bool>,
) -> Served<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = io.activity.clone();
    let http = http1(header_timeout, limits.keep_alive);
    // Boxed: a parked connection's task does not carry hyper's state.
    let mut conn = Box::new(http.serve_connection(TokioIo::new(io), service));
    let answered = activity.answered.load(Ordering::Relaxed);
    let mut draining = false;
    let mut parking = false;
    loop {
        // Only once hyper has answered a request is it idle between two (before, it
        // would take the park for a close and say so in its first answer); until then the
        // connection is looked at now and then, and once it has answered.
        let may_park = limits.keep_alive && !draining && !parking;
        let has_answered = activity.answered.load(Ordering::Relaxed) > answered;
        let look = may_park.then_some(if has_answered {
            PARK_AFTER
        } else {
            UNANSWERED_LOOK
        });
        let check = activity.next_check(limits.idle_timeout, look);
        tokio::select! {
            done = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => {
                if !parking || draining || done.is_err() {
                    return Served::Over;
                }
                let parts = conn.into_parts();
                let mut io = parts.io.into_inner();
                if !parts.read_buf.is_empty() {
                    io.unread = parts.read_buf;
                }
                return Served::Parked(io);
            }
            () = tokio::time::sleep_until(check) => {
                if activity.idle_for(limits.idle_timeout) {
                    // Dropping the connection closes it.
                    return Served::Over;
                }
                let has_answered = activity.answered.load(Ordering::Relaxed) > answered;
                if may_park && has_answered && activity.idle_for(PARK_AFTER) {
                    // hyper, idle between requests, ends its part without a word to the
                    // client; the stream stays open.
                    parking = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            }
            () = activity.answer.notified(), if may_park && !has_answered => {}
            () = stopped(stop), if !draining => {
                draining = true;
                Pin::new(&mut *conn).graceful_shutdown();
            }
        }
    }
}

/// Waits, without a buffer of its own, until a parked stream has bytes, and reads what
/// came (empty: the client closed it).
async fn read_parked<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Bytes> {
    std::future::poll_fn(|cx| {
        let mut buf = [0u8; PARKED_READ];
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut *stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Bytes::copy_from_slice(read.filled()))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// When bytes last moved on a connection, and how many of its requests are being answered.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last byte read or written.
    last: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether the connection is parked now.
    parked: std::sync::atomic::AtomicBool,
    /// Requests answered: hyper is idle between requests (and may be parked) only after
    /// it has answered one.
    answered: AtomicU64,
    /// Told when a request has been answered.
    answer: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            answered: AtomicU64::new(0),
            answer: tokio::sync::Notify::new(),
            parked: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }

    /// Whether nothing moved for `idle` and no request is being answered (a handler
    /// waiting for the platform is not idle).
    fn idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.last() + idle <= Instant::now()
    }

    /// When to look again: at the idle timeout, or first at `park` after the last byte.
    fn next_check(&self, idle: Duration, park: Option<Duration>) -> Instant {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return now + park.map_or(idle, |p| p.min(idle));
        }
        let last = self.last();
        let due = last + park.map_or(idle, |p| p.min(idle));
        if due <= now {
            now + park.unwrap_or(idle).min(idle)
        } else {
            due
        }
    }
}

/// A stream that notes when bytes move on it; `unread` is read first (what a parked
/// connection read, or hyper had read and not used, before it was parked).
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
    unread: Bytes,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.unread.is_empty() {
            let n = self.unread.len().min(buf.remaining());
            buf.put_slice(&self.unread.split_to(n));
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router as hyper's service: counts the requests being answered, and tells handlers
/// who is asking (`ConnectInfo`).
#[derive(Clone)]
struct Counted {
    router: Router,
    peer: Option<SocketAddr>,
    activity: Arc<Activity>,
}

/// Counts a request as being answered while it lives.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.answered.fetch_add(1, Ordering::Relaxed);
        self.0.touch();
        self.0.answer.notify_one();
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for Counted {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight(self.activity.clone());
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let router = self.router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await;
            drop(in_flight);
            response
        })
    }
}

/// Lets a repeated event through at most once per `every`, saying how many were held back.
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Throttle {
    pub(crate) fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held: 0,
        }
    }

    /// `Some(n)` when this event is to be told, with the `n` held back since the last one.
    pub(crate) fn tick(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|t| now < t + self.every) {
            self.held += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
    use tokio::task::JoinHandle;

    const LIMITS: HttpLimits = HttpLimits {
        max_connections: 4,
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
    };

    fn app() -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/big", get(|| async { "x".repeat(100_000) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(600)).await;
                    "done"
                }),
            )
    }

    /// One connection served over an in-memory pipe of `buffer` bytes each way: the
    /// client's end, the server's task (it ends when the connection closes), and the stop
    /// switch (kept, or the connection drains at once).
    fn pipe(buffer: usize) -> (DuplexStream, JoinHandle<()>, watch::Sender<bool>) {
        let (client, server) = tokio::io::duplex(buffer);
        let (stop, stopped) = watch::channel(false);
        let limits = ConnLimits {
            header_timeout: LIMITS.header_timeout,
            idle_timeout: LIMITS.idle_timeout,
            keep_alive: true,
        };
        let task = tokio::spawn(connection(server, None, app(), limits, stopped));
        (client, task, stop)
    }

    /// Sends a whole request for `path`.
    async fn ask(client: &mut DuplexStream, path: &str) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
    }

    /// Reads until `needle` has arrived, or the connection ends.
    async fn read_until(client: &mut DuplexStream, needle: &str) -> String {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&got).contains(needle) {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    /// The slowloris: one header line every 5 s, the head never finished. The
    /// connection is closed at the header timeout (the clock is tokio's paused one).
    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let (mut client, server, _stop) = pipe(64 << 10);
        let started = Instant::now();
        let drip = tokio::spawn(async move {
            let _ = client.write_all(b"GET /healthz HTTP/1.1\r\n").await;
            for i in 0.. {
                tokio::time::sleep(Duration::from_secs(5)).await;
                if client
                    .write_all(format!("X-{i}: y\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        });
        server.await.unwrap();
        let lasted = started.elapsed();
        assert!(
            lasted >= LIMITS.header_timeout
                && lasted < LIMITS.header_timeout + Duration::from_secs(5),
            "closed after {lasted:?}"
        );
        drip.await.unwrap();
    }

    /// 500 idle connections were held for as long as their clients liked: an idle
    /// keep-alive connection now closes at the header timeout after its last answer.
    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_is_closed_after_the_header_timeout() {
        let (mut client, server, _stop) = pipe(64 << 10);
        ask(&mut client, "/healthz").await;
        let answer = read_until(&mut client, "ok").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        let answered = Instant::now();
        server.await.unwrap();
        assert_eq!(answered.elapsed(), LIMITS.header_timeout);
        let mut rest = Vec::new();
        assert_eq!(client.read_to_end(&mut rest).await.unwrap(), 0, "closed");
    }

    /// A client that asks and never reads the answer: nothing moves, and the connection
    /// is closed at the idle timeout.
    #[tokio::test(start_paused = true)]
    async fn a_client_that_stops_reading_is_cut_off() {
        let (mut client, server, _stop) = pipe(1024);
        ask(&mut client, "/big").await;
        let asked = Instant::now();
        server.await.unwrap();
        let lasted = asked.elapsed();
        assert!(
            lasted >= LIMITS.idle_timeout && lasted < LIMITS.idle_timeout + Duration::from_secs(1),
            "closed after {lasted:?}"
        );
        drop(client);
    }

    /// A request being answered is not idle, however long its handler takes (an admin
    /// request waiting for the platform).
    #[tokio::test(start_paused = true)]
    async fn a_slow_answer_is_not_cut_off() {
        let (mut client, server, _stop) = pipe(64 << 10);
        ask(&mut client, "/slow").await;
        let asked = Instant::now();
        let answer = read_until(&mut client, "done").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("done"), "{answer}");
        assert_eq!(asked.elapsed(), Duration::from_secs(600));
        drop(client);
        server.await.unwrap();
    }

    /// At shutdown, a request in flight is answered and the connection then closes.
    #[tokio::test(start_paused = true)]
    async fn shutting_down_lets_the_request_in_flight_finish() {
        let (mut client, server, stop) = pipe(64 << 10);
        ask(&mut client, "/slow").await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.send(true).unwrap();
        let answer = read_until(&mut client, "done").await;
        assert!(answer.ends_with("done"), "{answer}");
        server.await.unwrap();
    }

    /// hyper's buffers (16 KiB a connection) were held by every idle keep-alive
    /// connection: one still for 100 ms is parked without them, and its next request,
    /// even one whose head is split across the park, is answered on the same connection.
    #[tokio::test(start_paused = true)]
    async fn an_idle_keep_alive_connection_is_parked_and_still_answers() {
        let (mut client, server) = tokio::io::duplex(64 << 10);
        let (_stop, stopped) = watch::channel(false);
        let activity = Arc::new(Activity::new());
        let limits = ConnLimits {
            header_timeout: LIMITS.header_timeout,
            idle_timeout: LIMITS.idle_timeout,
            keep_alive: true,
        };
        let task = tokio::spawn(watched_connection(
            server,
            None,
            app(),
            limits,
            stopped,
            activity.clone(),
        ));
        for round in 0..3 {
            let parked = activity.parked.load(Ordering::Relaxed);
            assert_eq!(parked, round > 0, "parked before request {round}");
            client
                .write_all(b"GET /healthz HTTP/1.1\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(b"Host: x\r\n\r\n").await.unwrap();
            let answer = read_until(&mut client, "ok").await;
            assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
            assert!(!answer.contains("close"), "{answer}");
            assert!(!activity.parked.load(Ordering::Relaxed));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(activity.parked.load(Ordering::Relaxed));
        assert!(!task.is_finished());
    }

    #[test]
    fn the_cap_fits_the_open_file_limit() {
        assert_eq!(fit_to_file_limit(256, 1_048_576), 256);
        assert_eq!(fit_to_file_limit(256, 1024), 256);
        // The 128-file limit: room for the daemon's own files and the reserve.
        assert_eq!(fit_to_file_limit(256, 128), 48);
        assert_eq!(fit_to_file_limit(256, 10), 1);
    }

    #[test]
    fn a_throttle_lets_one_through_per_period_and_counts_the_rest() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut t = Throttle::new(Duration::from_secs(10));
            assert_eq!(t.tick(), Some(0));
            assert_eq!(t.tick(), None);
            assert_eq!(t.tick(), None);
            tokio::time::advance(Duration::from_secs(10)).await;
            assert_eq!(t.tick(), Some(2));
        });
    }
}
