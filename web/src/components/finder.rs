//! "Find a block" (Ctrl+K): type part of a title, pick a match with the arrows and Enter (or a click),
//! and the board selects it and zooms to it. The matching is `model::finder`.

use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::command_queue::CommandQueue;
use crate::components::canvas::SharedEngine;
use crate::model::commands::Command;
use crate::model::finder::{FINDER_LIMIT, find, move_highlight};

#[derive(Properties, PartialEq)]
pub struct FinderProps {
    pub engine: SharedEngine,
    pub queue: CommandQueue,
}

#[function_component]
pub fn Finder(props: &FinderProps) -> Html {
    let query = use_state(String::new);
    let highlight = use_state(|| 0usize);
    let input = use_node_ref();
    {
        let input = input.clone();
        use_effect_with((), move |_| {
            if let Some(input) = input.cast::<HtmlInputElement>() {
                let _ = input.focus();
            }
        });
    }
    let found = find(&props.engine.0.borrow().board, &query, FINDER_LIMIT);
    let oninput = {
        let (query, highlight) = (query.clone(), highlight.clone());
        Callback::from(move |event: InputEvent| {
            let input: HtmlInputElement = event.target_unchecked_into();
            query.set(input.value());
            highlight.set(0);
        })
    };
    let onkeydown = {
        let (highlight, queue) = (highlight.clone(), props.queue.clone());
        let ids: Vec<_> = found.iter().map(|found| found.id.clone()).collect();
        Callback::from(move |event: KeyboardEvent| match event.key().as_str() {
            "ArrowDown" | "ArrowUp" => {
                event.prevent_default();
                highlight.set(move_highlight(
                    *highlight,
                    ids.len(),
                    event.key() == "ArrowDown",
                ));
            }
            "Enter" => {
                event.prevent_default();
                if let Some(id) = ids.get(*highlight) {
                    queue.send(Command::Jump(id.clone()));
                }
            }
            "Escape" => {
                event.prevent_default();
                queue.send(Command::CloseFinder);
            }
            _ => {}
        })
    };
    let close = props.queue.callback(|_: MouseEvent| Command::CloseFinder);
    let stop = Callback::from(|event: MouseEvent| event.stop_propagation());
    let empty = query.trim().is_empty();
    html! {
        <div class="modal-backdrop finder-backdrop" onclick={close}>
            <div class="modal finder" role="dialog" aria-modal="true" aria-label="Find a block" data-testid="finder" onclick={stop}>
                <input ref={input} class="finder-input" data-testid="finder-input" placeholder="Find a block by its title…"
                    value={(*query).clone()} {oninput} {onkeydown} aria-label="Block title" />
                <ul class="finder-results" role="listbox">
                    { for found.iter().enumerate().map(|(n, found)| {
                        let pick = props.queue.callback({
                            let id = found.id.clone();
                            move |_: MouseEvent| Command::Jump(id.clone())
                        });
                        html! {
                            <li key={found.id.to_string()} role="option" aria-selected={(n == *highlight).to_string()}
                                class={classes!("finder-row", (n == *highlight).then_some("highlighted"))}
                                data-testid="finder-result" data-block-id={found.id.to_string()} onclick={pick}>
                                <span class={classes!("level-tag", found.level.as_str())}>{ found.level.as_str() }</span>
                                <span class="finder-title">{ found.title.clone() }</span>
                                if let Some(within) = &found.within {
                                    <span class="muted small">{ format!("in {within}") }</span>
                                }
                            </li>
                        }
                    }) }
                </ul>
                if !empty && found.is_empty() {
                    <p class="muted small" data-testid="finder-nothing">{ "No block has that in its title." }</p>
                }
                <p class="muted small">{ "↑ ↓ to choose, Enter to jump, Escape to close" }</p>
            </div>
        </div>
    }
}
