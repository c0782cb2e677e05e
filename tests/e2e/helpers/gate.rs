//! A TCP gate in front of RabbitMQ or Postgres: open, it forwards connections; closed, it refuses
//! them and cuts the ones it carried. Lets a test make a service unreachable for one Baton only,
//! without touching the services other tests share.

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
    /// A gate to RabbitMQ at 127.0.0.1:5672, initially `open` or closed.
    pub async fn amqp(open: bool) -> Self {
        Self::new("127.0.0.1:5672", open).await
    }

    /// A gate to Postgres at 127.0.0.1:5432.
    pub async fn postgres(open: bool) -> Self {
        Self::new("127.0.0.1:5432", open).await
    }

    pub async fn new(upstream: &str, open: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, _) = watch::channel(open);
        let state = Arc::new(state);
        let upstream: SocketAddr = upstream.parse().unwrap();
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*accept_state.borrow() {
                    drop(client);
                    continue;
                }
                let mut closed = accept_state.subscribe();
                tokio::spawn(async move {
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
        Self {
            addr,
            open: state,
            accept,
        }
    }

    /// The AMQP URL that goes through the gate.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// The address to put in a Postgres URL.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    pub fn close(&self) {
        self.open.send_replace(false);
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
