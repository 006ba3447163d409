//! The fixture itself must work, or every integration test would fail for the wrong reason.
use crate::common;

#[test]
fn mosquitto_fixture_accepts_connections_and_stops_on_kill() {
    let mut broker = common::Broker::start();
    assert!(std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_ok());
    broker.kill();
    assert!(common::wait_until(
        std::time::Duration::from_secs(2),
        || { std::net::TcpStream::connect(("127.0.0.1", broker.port)).is_err() }
    ));
}
