//! A managed device's node, embedded: join with an enrollment link the first time, restart from
//! the data directory afterwards. `cargo run --example node -- DATA_DIR [LINK]`
use fleetmesh::{overlay::NodeEvent, NodeBuilder};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut builder = NodeBuilder::new(args.next().ok_or("usage: node DATA_DIR [LINK]")?);
    if let Some(link) = args.next() {
        builder = builder.join(link.parse()?);
    }
    let mut node = builder.start().await?;
    println!("node {} listening on port {}", node.id(), node.port());
    while let Some(event) = node.next_event().await {
        if let NodeEvent::Message { id, data } = event {
            println!("message {id} from the master: {}", String::from_utf8_lossy(&data));
        }
    }
    Ok(())
}
