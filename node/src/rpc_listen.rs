//! The public RPC's accept loop, in front of jsonrpsee's service: it bounds what one client
//! address can hold (connections) and how long a connection may take (the first request,
//! each request's headers, each request's body, and an idle keep-alive connection), which
//! jsonrpsee's own server does not. The decision of whom to admit is [`Admission`], a plain
//! table; the loop and the per-connection task are the I/O around it.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use jsonrpsee::server::{Methods, StopHandle, TowerServiceBuilder};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::Service;
use tracing::{debug, warn};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one listener allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections open at once, from everyone.
    pub total: usize,
    /// Connections open at once from one IP address.
    pub per_address: usize,
    /// A new connection must have sent its first request's headers by then.
    pub first_request: Duration,
    /// A request's headers must arrive within this, counted from when the connection is
    /// ready for them: an idle keep-alive connection is closed after it too.
    pub headers: Duration,
    /// A request's body must arrive within this, counted from its headers.
    pub body: Duration,
}

/// Why a connection was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The listener holds `Limits::total` connections.
    Full,
    /// This address holds `Limits::per_address` connections.
    AddressFull,
}

/// Open connections by address: the decision of whom to admit.
#[derive(Debug)]
pub struct Admission {
    total: usize,
    per_address: usize,
    open: usize,
    by_address: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(limits: &Limits) -> Self {
        Admission {
            total: limits.total,
            per_address: limits.per_address,
            open: 0,
            by_address: HashMap::new(),
        }
    }

    /// Counts a new connection from `address`, or says why not.
    pub fn admit(&mut self, address: IpAddr) -> Result<(), Refusal> {
        if self.open >= self.total {
            return Err(Refusal::Full);
        }
        let held = self.by_address.entry(address).or_insert(0);
        if *held >= self.per_address {
            return Err(Refusal::AddressFull);
        }
        *held += 1;
        self.open += 1;
        Ok(())
    }

    /// Forgets a connection [`Admission::admit`] counted.
    pub fn release(&mut self, address: IpAddr) {
        if let Some(held) = self.by_address.get_mut(&address) {
            *held = held.saturating_sub(1);
            if *held == 0 {
                self.by_address.remove(&address);
            }
            self.open = self.open.saturating_sub(1);
        }
    }

    /// Connections open now, and how many addresses hold them.
    pub fn counts(&self) -> (usize, usize) {
        (self.open, self.by_address.len())
    }
}

/// A counted connection: released when the connection's task ends, however it ends.
struct Slot {
    table: Arc<Mutex<Admission>>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut table) = self.table.lock() {
            table.release(self.address);
        }
    }
}

/// Serves `methods` on `listener` until `stop` fires. `refused` counts connections turned
/// away by the table.
pub async fn serve(
    listener: TcpListener,
    builder: TowerServiceBuilder<tower::layer::util::Identity, tower::layer::util::Identity>,
    methods: Methods,
    stop: StopHandle,
    limits: Limits,
    refused: prometheus_client::metrics::counter::Counter,
) {
    let table = Arc::new(Mutex::new(Admission::new(&limits)));
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, mostly: back off rather than spin.
                    warn!(%error, "cannot accept an RPC connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stop.clone().shutdown() => break,
        };
        let admitted = table
            .lock()
            .map_err(|_| Refusal::Full)
            .and_then(|mut table| table.admit(remote.ip()));
        if let Err(refusal) = admitted {
            refused.inc();
            debug!(%remote, ?refusal, "RPC connection refused");
            refuse(&socket, refusal);
            continue;
        }
        let slot = Slot {
            table: Arc::clone(&table),
            address: remote.ip(),
        };
        let service = builder.clone().build(methods.clone(), stop.clone());
        tokio::spawn(serve_connection(
            socket,
            remote,
            service,
            stop.clone(),
            limits,
            slot,
        ));
    }
}

/// Tells a refused client why, if its socket takes the bytes at once, and closes it.
fn refuse(socket: &TcpStream, refusal: Refusal) {
    let reason = match refusal {
        Refusal::Full => "the node holds its most RPC connections",
        Refusal::AddressFull => "too many RPC connections from your address",
    };
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reason}",
        reason.len()
    );
    let _ = socket.try_write(answer.as_bytes());
}

/// One connection: HTTP/1.1 (and WebSocket upgrades) with header, body and first-request
/// time-outs; closed gracefully when the server stops.
async fn serve_connection<S>(
    socket: TcpStream,
    remote: SocketAddr,
    service: S,
    stop: StopHandle,
    limits: Limits,
    slot: Slot,
) where
    S: Service<http::Request<Deadline<Incoming>>, Response = jsonrpsee::server::HttpResponse>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    let _slot = slot;
    if let Err(error) = socket.set_nodelay(true) {
        debug!(%error, "cannot set TCP_NODELAY");
    }
    let requested = Arc::new(Notify::new());
    let service = DeadlineService {
        inner: service,
        body: limits.body,
        requested: Arc::clone(&requested),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.headers);
    let hyper_service = hyper_util::service::TowerToHyperService::new(service);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(socket), hyper_service);
    let stopped = stop.shutdown();
    tokio::pin!(connection, stopped);
    let first = tokio::time::timeout(limits.first_request, requested.notified());
    tokio::pin!(first);
    let mut waiting_first = true;
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(error) = result {
                    debug!(%remote, %error, "RPC connection ended");
                }
                return;
            }
            () = &mut stopped => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
                return;
            }
            waited = &mut first, if waiting_first => {
                if waited.is_err() {
                    debug!(%remote, "no request within the first-request time-out");
                    return;
                }
                waiting_first = false;
            }
        }
    }
}

/// Gives each request's body a deadline, and says when the first request arrived.
#[derive(Clone, Debug)]
struct DeadlineService<S> {
    inner: S,
    body: Duration,
    requested: Arc<Notify>,
}

impl<S> Service<http::Request<Incoming>> for DeadlineService<S>
where
    S: Service<http::Request<Deadline<Incoming>>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<Incoming>) -> Self::Future {
        self.requested.notify_one();
        let (parts, body) = request.into_parts();
        let body = Deadline {
            inner: body,
            limit: self.body,
            timer: Box::pin(tokio::time::sleep(self.body)),
        };
        self.inner.call(http::Request::from_parts(parts, body))
    }
}

/// A request body that fails once its deadline passes before its last byte.
#[derive(Debug)]
pub struct Deadline<B> {
    inner: B,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Body for Deadline<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(context) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        if this.timer.as_mut().poll(context).is_ready() {
            let message = format!("request body not received within {:?}", this.limit);
            return Poll::Ready(Some(Err(message.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize) -> Limits {
        Limits {
            total,
            per_address,
            first_request: Duration::from_secs(1),
            headers: Duration::from_secs(1),
            body: Duration::from_secs(1),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_cannot_take_more_than_its_share() {
        let mut table = Admission::new(&limits(10, 3));
        for _ in 0..3 {
            assert_eq!(table.admit(ip(5)), Ok(()));
        }
        assert_eq!(table.admit(ip(5)), Err(Refusal::AddressFull));
        // Another address still gets in.
        assert_eq!(table.admit(ip(1)), Ok(()));
        table.release(ip(5));
        assert_eq!(table.admit(ip(5)), Ok(()));
        assert_eq!(table.counts(), (4, 2));
    }

    #[test]
    fn the_total_bounds_all_addresses() {
        let mut table = Admission::new(&limits(2, 2));
        assert_eq!(table.admit(ip(1)), Ok(()));
        assert_eq!(table.admit(ip(2)), Ok(()));
        assert_eq!(table.admit(ip(3)), Err(Refusal::Full));
        table.release(ip(1));
        assert_eq!(table.admit(ip(3)), Ok(()));
    }

    #[test]
    fn releasing_what_was_never_admitted_changes_nothing() {
        let mut table = Admission::new(&limits(2, 1));
        table.release(ip(9));
        assert_eq!(table.counts(), (0, 0));
        assert_eq!(table.admit(ip(9)), Ok(()));
        table.release(ip(9));
        table.release(ip(9));
        assert_eq!(table.counts(), (0, 0));
    }
}
