#[cfg(target_arch = "wasm32")]
fn main() {
    yew::Renderer::<web::app::App>::new().render();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "the board runs in a browser: build it with scripts/build (target wasm32-unknown-unknown)"
    );
}
