//! A minimal OpenAI-compatible upstream for the gateway benchmark (`benches/gateway.sh`):
//! `gateway mock ADDR` answers every chat completion at once with a fixed body and a
//! usage block, like a provider that costs nothing. Run by the script, not by criterion.
use axum::Router;
use axum::routing::post;

const ANSWER: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-bench","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}}"#;

async fn chat() -> ([(&'static str, &'static str); 1], &'static str) {
    ([("content-type", "application/json")], ANSWER)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(addr) = args
        .iter()
        .position(|a| a == "mock")
        .and_then(|i| args.get(i + 1))
    else {
        println!("usage: gateway mock ADDR   (run by benches/gateway.sh)");
        return;
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("runtime: {e}"),
    };
    rt.block_on(async {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return eprintln!("bind {addr}: {e}"),
        };
        let app = Router::new().route("/v1/chat/completions", post(chat));
        if let Err(e) = axum::serve(listener, app).await {
            eprintln!("serve: {e}");
        }
    });
}
