//! Loopback ports.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    time::Duration,
};

/// A TCP port on the loopback interface that is free now (whoever needs it claims it moments
/// later).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether something accepts connections on `port` of the loopback interface.
pub fn port_open(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}
