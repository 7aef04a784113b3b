//! Instant messages to a device's user (thesis S10), with the user's reply carried back.
//!
//! On the device: `cargo run --example instant_message -- DATA_DIR [LINK]`. Each message the
//! master sends with kind `message` is shown on the terminal; the line the user types is the
//! answer. On the operator's side:
//!
//! ```sh
//! fleetmesh request NODE message 'Can I restart your PC at noon?' --wait 60s
//! ```
//!
//! prints the reply. A message for a device that is off waits for it (`--ttl`), and is shown
//! once even if the device restarts before answering.
use fleetmesh::NodeBuilder;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: instant_message DATA_DIR [LINK]")?;
    // One prompt at a time: the terminal is shared by every message.
    let terminal = std::sync::Arc::new(tokio::sync::Mutex::new(BufReader::new(tokio::io::stdin())));
    let mut builder = NodeBuilder::new(dir).refuse_unknown_requests(true).handler(
        "message",
        move |text: Vec<u8>| {
            let terminal = terminal.clone();
            async move {
                let mut input = terminal.lock().await;
                println!(
                    "\nMessage from your administrator:\n  {}",
                    String::from_utf8_lossy(&text)
                );
                println!("Your reply (Enter to send):");
                let mut reply = String::new();
                match input.read_line(&mut reply).await {
                    Ok(n) if n > 0 => Ok(reply.trim_end().as_bytes().to_vec()),
                    Ok(_) => Err("the user closed the terminal".to_owned()),
                    Err(e) => Err(format!("cannot read the reply: {e}")),
                }
            }
        },
    );
    if let Some(link) = args.next() {
        builder = builder.join(link.parse()?);
    }
    let mut node = builder.start().await?;
    println!("node {} waiting for messages", node.id());
    while node.next_event().await.is_some() {}
    Ok(())
}
