//! A TCP gate in front of RabbitMQ or Postgres: open, it forwards connections; closed, it
//! refuses new ones and cuts the ones it carried. It makes a service unreachable for one Baton
//! only, without touching the service or anyone else using it.

use std::{net::SocketAddr, sync::Arc};

use tokio::{
    io::copy_bidirectional,
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

pub struct TcpGate {
    addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
    accept: JoinHandle<()>,
}

impl TcpGate {
    /// A gate on a free loopback port to `upstream`, initially `open` or closed.
    pub async fn new(upstream: SocketAddr, open: bool) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (state, _) = watch::channel(open);
        let state = Arc::new(state);
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*accept_state.borrow() {
                    drop(client);
                    continue;
                }
                let mut closed = accept_state.subscribe();
                tokio::spawn(async move {
                    // An upstream that refuses is what the client sees too: its connection drops.
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Ok(Self {
            addr,
            open: state,
            accept,
        })
    }

    /// The gate's own address, to put in a client's URL instead of the upstream's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// An AMQP URL (guest, default vhost) that goes through the gate.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    pub fn open(&self) {
        self.set_open(true);
    }

    pub fn close(&self) {
        self.set_open(false);
    }
}

impl Drop for TcpGate {
    /// Cuts what the gate carries, so nothing outlives it through a forwarding task.
    fn drop(&mut self) {
        self.close();
        self.accept.abort();
    }
}
