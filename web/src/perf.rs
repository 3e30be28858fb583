//! Named moments of the page's life in the browser's performance timeline (`performance.mark`), so
//! `scripts/bench ui` can say where a large board's load goes: fetching the snapshot, parsing it,
//! building the board, the first render. Marks cost microseconds and are never read by the page.

use wasm_bindgen::{JsCast, JsValue};

/// Records `performance.mark(name)`; does nothing where the API is missing.
pub fn mark(name: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Ok(performance) = js_sys::Reflect::get(&window, &JsValue::from_str("performance")) else {
        return;
    };
    let Ok(mark) = js_sys::Reflect::get(&performance, &JsValue::from_str("mark")) else {
        return;
    };
    if let Ok(mark) = mark.dyn_into::<js_sys::Function>() {
        let _ = mark.call1(&performance, &JsValue::from_str(name));
    }
}
