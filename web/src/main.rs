#[cfg(target_arch = "wasm32")]
fn main() {
    web::crash::install();
    yew::Renderer::<web::app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "the board runs in a browser: build it with scripts/build (target wasm32-unknown-unknown)"
    );
}
