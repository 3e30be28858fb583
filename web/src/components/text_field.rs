//! A text field that keeps what the person types.
//!
//! While the field has focus it shows the person's draft, never a newer value from the board: someone
//! else's edit that arrives meanwhile is announced under the field ("theirs / yours") instead of
//! replacing the text. Leaving the field saves the draft if it changed; Escape puts the value back. The
//! field is never re-created while it has focus, so saving one field and tabbing into the next keeps the
//! focus and every keystroke.

use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct TextFieldProps {
    /// The value as the board holds it now.
    pub value: AttrValue,
    #[prop_or_default]
    pub multiline: bool,
    #[prop_or(4)]
    pub rows: u32,
    pub testid: AttrValue,
    #[prop_or_default]
    pub placeholder: AttrValue,
    #[prop_or(200)]
    pub maxlength: u32,
    /// An empty value is not saved (a title).
    #[prop_or_default]
    pub required: bool,
    /// Shown but not editable (a viewer's board, a deleted block). A draft already typed stays.
    #[prop_or_default]
    pub readonly: bool,
    /// Focus the field and select its text (a block just created).
    #[prop_or_default]
    pub focus: bool,
    pub on_save: Callback<String>,
}

/// The person's text while they edit, and `base`: the board's value when they started (or what they
/// last saved), to tell a change underneath from their own.
#[derive(Debug, Clone)]
struct Draft {
    text: String,
    base: String,
}

#[derive(Debug, Default)]
struct Memory {
    draft: Option<Draft>,
    /// Saved text not yet reflected in `value`, and the `value` it was saved over: shown until `value`
    /// moves on, so the field does not flash back to the old text while the save is in flight.
    saved: Option<(String, String)>,
}

fn field_value(event: &Event, multiline: bool) -> String {
    if multiline {
        event.target_unchecked_into::<HtmlTextAreaElement>().value()
    } else {
        event.target_unchecked_into::<HtmlInputElement>().value()
    }
}

fn set_field_value(node: &NodeRef, text: &str) {
    if let Some(input) = node.cast::<HtmlInputElement>() {
        input.set_value(text);
    } else if let Some(area) = node.cast::<HtmlTextAreaElement>() {
        area.set_value(text);
    }
}

#[function_component]
pub fn TextField(props: &TextFieldProps) -> Html {
    let memory = use_mut_ref(Memory::default);
    let redraw = use_force_update();
    let node = use_node_ref();
    {
        let node = node.clone();
        use_effect_with(props.focus, move |focus| {
            if *focus {
                if let Some(input) = node.cast::<HtmlInputElement>() {
                    let _ = input.focus();
                    input.select();
                } else if let Some(area) = node.cast::<HtmlTextAreaElement>() {
                    let _ = area.focus();
                }
            }
        });
    }
    let value = props.value.to_string();
    let (shown, theirs) = {
        let memory = memory.borrow();
        let shown = match (&memory.draft, &memory.saved) {
            (Some(draft), _) => draft.text.clone(),
            (None, Some((text, over))) if *over == value => text.clone(),
            _ => value.clone(),
        };
        let theirs = memory
            .draft
            .as_ref()
            .filter(|draft| draft.base != value)
            .map(|_| value.clone());
        (shown, theirs)
    };
    let onfocus = {
        let (memory, value) = (memory.clone(), value.clone());
        Callback::from(move |_: FocusEvent| {
            let mut memory = memory.borrow_mut();
            if memory.draft.is_none() {
                // After a save still in flight, the base is what was saved: its echo is not "theirs".
                let base = match &memory.saved {
                    Some((text, over)) if *over == value => text.clone(),
                    _ => value.clone(),
                };
                memory.draft = Some(Draft {
                    text: base.clone(),
                    base,
                });
            }
        })
    };
    let oninput = {
        let (memory, multiline) = (memory.clone(), props.multiline);
        Callback::from(move |event: InputEvent| {
            let text = field_value(&event, multiline);
            if let Some(draft) = memory.borrow_mut().draft.as_mut() {
                draft.text = text;
            }
        })
    };
    let onblur = {
        let (memory, value, redraw) = (memory.clone(), value.clone(), redraw.clone());
        let (on_save, required, readonly) = (props.on_save.clone(), props.required, props.readonly);
        Callback::from(move |_: FocusEvent| {
            if readonly {
                // Nothing can be saved; the draft stays on screen to be copied.
                return;
            }
            let save = {
                let mut memory = memory.borrow_mut();
                let Some(draft) = memory.draft.take() else {
                    return;
                };
                let changed = draft.text != draft.base;
                let acceptable = !required || !draft.text.trim().is_empty();
                if changed && acceptable {
                    memory.saved = Some((draft.text.clone(), value.clone()));
                    Some(draft.text)
                } else {
                    None
                }
            };
            redraw.force_update();
            if let Some(text) = save {
                on_save.emit(text);
            }
        })
    };
    let onkeydown = {
        let (memory, node, multiline) = (memory.clone(), node.clone(), props.multiline);
        Callback::from(move |event: KeyboardEvent| {
            let blur = |node: &NodeRef| {
                if let Some(element) = node.cast::<web_sys::HtmlElement>() {
                    let _ = element.blur();
                }
            };
            match event.key().as_str() {
                "Enter" if !multiline => {
                    event.prevent_default();
                    blur(&node);
                }
                "Escape" => {
                    // Put back what was there and leave the field without saving.
                    let base = memory
                        .borrow()
                        .draft
                        .as_ref()
                        .map(|draft| draft.base.clone());
                    if let Some(base) = base {
                        set_field_value(&node, &base);
                        if let Some(draft) = memory.borrow_mut().draft.as_mut() {
                            draft.text = base;
                        }
                    }
                    blur(&node);
                }
                _ => {}
            }
        })
    };
    let use_theirs = {
        let (memory, node, value, redraw) =
            (memory.clone(), node.clone(), value.clone(), redraw.clone());
        Callback::from(move |_: MouseEvent| {
            set_field_value(&node, &value);
            memory.borrow_mut().draft = Some(Draft {
                text: value.clone(),
                base: value.clone(),
            });
            redraw.force_update();
        })
    };
    let keep_mine = {
        let (memory, value, redraw) = (memory.clone(), value.clone(), redraw.clone());
        Callback::from(move |_: MouseEvent| {
            if let Some(draft) = memory.borrow_mut().draft.as_mut() {
                draft.base = value.clone();
            }
            redraw.force_update();
        })
    };
    // The buttons must not take the focus from the field (that would save it).
    let keep_focus = Callback::from(|event: MouseEvent| event.prevent_default());
    let conflict = theirs.map(|theirs| {
        html! {
            <div class="field-conflict" data-testid="field-conflict" role="status">
                <span>{ "Someone else changed this while you were typing. Theirs:" }</span>
                <q data-testid="field-conflict-theirs">{ theirs }</q>
                <span class="conflict-actions">
                    <button class="ghost small" onmousedown={keep_focus.clone()} onclick={use_theirs} data-testid="use-theirs">{ "Use theirs" }</button>
                    <button class="ghost small" onmousedown={keep_focus} onclick={keep_mine} data-testid="keep-mine">{ "Keep mine" }</button>
                </span>
            </div>
        }
    });
    let field = if props.multiline {
        html! {
            <textarea ref={node} rows={props.rows.to_string()} value={shown} readonly={props.readonly}
                placeholder={props.placeholder.clone()} data-testid={props.testid.clone()}
                {onfocus} {oninput} {onblur} {onkeydown} />
        }
    } else {
        html! {
            <input ref={node} value={shown} readonly={props.readonly} maxlength={props.maxlength.to_string()}
                placeholder={props.placeholder.clone()} data-testid={props.testid.clone()}
                {onfocus} {oninput} {onblur} {onkeydown} />
        }
    };
    html! {
        <>
            { field }
            // Always one child (see `components::slot`): a conflict notice that appears must not make
            // Yew rebuild the field, which would drop the focus and the keystrokes after it.
            { super::slot(conflict) }
        </>
    }
}
