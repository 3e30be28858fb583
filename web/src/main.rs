#[cfg(target_arch = "wasm32")]
fn main() {
    web::crash::install();
    wasm_bindgen_futures::spawn_local(async {
        // The API's origin must be known before the first call; a broken config.json is shown,
        // not guessed around.
        if let Err(problem) = web::api::load_config().await {
            web::crash::show_problem(&problem);
            return;
        }
        yew::Renderer::<web::app::App>::new().render();
    });
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "the board runs in a browser: build it with scripts/build (target wasm32-unknown-unknown)"
    );
}
