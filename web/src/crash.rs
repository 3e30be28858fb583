//! When the board panics anyway: a banner that says so and offers a reload, instead of a page that looks
//! alive and answers nothing (a wasm panic aborts the module, so every later event fails), and a console
//! report with what the board was doing.
//!
//! The banner is plain DOM written by the hook itself: after a panic, Yew and our state are not to be
//! trusted to render anything.

use std::cell::Cell;

use wasm_bindgen::JsCast;

thread_local! {
    /// What the board was doing when it panicked (a static label: the hook must not allocate through
    /// state that may be mid-borrow).
    static ACTIVITY: Cell<&'static str> = const { Cell::new("starting") };
}

/// Records what the board is about to do, for the crash report. Returns what it was doing before.
pub fn doing(activity: &'static str) -> &'static str {
    ACTIVITY.with(|cell| cell.replace(activity))
}

/// Installs the panic hook (once, at start-up).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let activity = ACTIVITY.with(Cell::get);
        let report = format!(
            "cat-factory: the board crashed while handling \"{activity}\": {info}\n\
             Please reload the page; if it keeps happening, send this message to the developers."
        );
        web_sys::console::error_1(&report.into());
        show_banner();
    }));
}

fn show_banner() {
    let Some(document) = web_sys::window().and_then(|window| window.document()) else {
        return;
    };
    if document
        .query_selector("[data-testid='crash-banner']")
        .ok()
        .flatten()
        .is_some()
    {
        return;
    }
    let Ok(banner) = document.create_element("div") else {
        return;
    };
    banner.set_class_name("crash-banner");
    let _ = banner.set_attribute("role", "alert");
    let _ = banner.set_attribute("data-testid", "crash-banner");
    banner.set_inner_html(
        "<strong>Something went wrong and the board stopped working.</strong> \
         <span>Your saved changes are safe. Reload the page to continue.</span> \
         <a class=\"button primary\" href=\"\" data-testid=\"crash-reload\">Reload</a>",
    );
    if let Some(link) = banner
        .query_selector("a")
        .ok()
        .flatten()
        .and_then(|link| link.dyn_into::<web_sys::HtmlElement>().ok())
    {
        // A link to the page itself reloads it without any of our (possibly dead) code running.
        if let Some(href) = web_sys::window().and_then(|window| window.location().href().ok()) {
            let _ = link.set_attribute("href", &href);
        }
    }
    if let Some(body) = document.body() {
        let _ = body.append_child(&banner);
    }
}

/// Shows a configuration problem that keeps the board from starting (its text set as text, never as
/// markup), and reports it to the console.
pub fn show_problem(problem: &str) {
    web_sys::console::error_1(&format!("cat-factory: the board cannot start: {problem}").into());
    let Some(document) = web_sys::window().and_then(|window| window.document()) else {
        return;
    };
    let Ok(notice) = document.create_element("div") else {
        return;
    };
    notice.set_class_name("crash-banner");
    let _ = notice.set_attribute("role", "alert");
    let _ = notice.set_attribute("data-testid", "config-problem");
    notice.set_text_content(Some(&format!(
        "The board cannot start: {problem}. Ask whoever deployed it to fix config.json."
    )));
    if let Some(body) = document.body() {
        let _ = body.append_child(&notice);
    }
}
