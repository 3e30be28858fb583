//! A task's run, in its side panel: pick a pipeline and a model, see the forecast against what is left
//! of the budget, start (or queue) the run, then watch it live — each step with its state, the current
//! step's progress, failures, the pull request — and answer it: decisions, approvals, merge, cancel,
//! retry. What each state allows and how refusals are worded are `model::runs`; this component only
//! draws them and makes the calls.
//!
//! The run itself lives on the board (`Board::runs`), kept live by the page from the event stream;
//! every answer from the API is handed to the page (`on_run`) so the panel and the task's card agree.

use domain::api::runs::{
    AnswerDecisionRequest, ApprovalVerdictKind, CreateRunRequest, GiveApprovalRequest,
    PipelineView, RunRecord,
};
use domain::api::workspaces::UpdateWorkspaceRequest;
use domain::ids::{AccountId, BlockId, WorkspaceId};
use domain::run::{StepStatus, StepSummary};
use domain::spend::{CatalogListing, Forecast};
use web_sys::{HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::api::{self, ApiFailure};
use crate::app::{Action, AppContext};
use crate::components::canvas::SharedEngine;
use crate::components::slot;
use crate::model::errors::human_error;
use crate::model::runs::{
    self, StartRefusal, actions_for, failure_label, forecast_fit, forecast_text, run_headline,
};

#[derive(Properties, PartialEq)]
pub struct RunPanelProps {
    pub engine: SharedEngine,
    pub workspace_id: WorkspaceId,
    pub block_id: BlockId,
    /// Changes whenever the board changed (the run or the spend may have moved).
    pub tick: u64,
    pub read_only: bool,
    /// A run as the API answered it: the page stores it on the board.
    pub on_run: Callback<RunRecord>,
    /// The task's own model choice (`modelId`), once its whole record is loaded.
    pub block_model: Option<String>,
    /// Saves a model picked here as the task's choice, which its runs then use.
    pub on_choose_model: Callback<String>,
    /// The caller may change the workspace's settings: offer the chosen model as its default.
    #[prop_or_default]
    pub manages_settings: bool,
}

fn explain(failure: &ApiFailure) -> String {
    human_error(failure.status, failure.code, &failure.message)
}

/// The start controls' state: the pipelines and models to choose from, the choice, its forecast.
#[derive(Clone, PartialEq, Default)]
struct Choice {
    pipelines: Vec<PipelineView>,
    models: Vec<CatalogListing>,
    pipeline: String,
    model: Option<String>,
}

#[function_component]
pub fn RunPanel(props: &RunPanelProps) -> Html {
    let choice = use_state(Choice::default);
    let forecast = use_state(|| None::<Result<Forecast, String>>);
    let refusal = use_state(|| None::<StartRefusal>);
    let problem = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let feedback = use_state(String::new);
    let app = use_context::<AppContext>();
    let redraw = use_force_update();
    let (account, workspace_default, run, spend, titles) = {
        let engine = props.engine.0.borrow();
        (
            engine.board.workspace.account_id.clone(),
            engine.board.workspace.default_model_id.clone(),
            engine.board.runs.get(&props.block_id).cloned(),
            engine.board.spend.block(&props.block_id),
            engine
                .board
                .blocks
                .iter()
                .map(|(id, block)| (id.to_string(), block.title.clone()))
                .collect::<std::collections::HashMap<_, _>>(),
        )
    };
    let actions = actions_for(run.as_ref(), props.read_only);

    // The pipelines and the models, once per panel.
    {
        let (choice, workspace, account) =
            (choice.clone(), props.workspace_id.clone(), account.clone());
        let preferred = props.block_model.clone().or(workspace_default.clone());
        use_effect_with(props.block_id.clone(), move |_| {
            load_choices(choice, workspace, account, preferred);
        });
    }
    // The task's own choice arrives with its whole record (or changes under us): show it.
    {
        let choice = choice.clone();
        use_effect_with(props.block_model.clone(), move |block_model| {
            if let Some(model) = block_model
                && choice.model.as_ref() != Some(model)
            {
                choice.set(Choice {
                    model: Some(model.clone()),
                    ..(*choice).clone()
                });
            }
        });
    }
    // The forecast for the chosen pipeline and model.
    {
        let (forecast, workspace, block) = (
            forecast.clone(),
            props.workspace_id.clone(),
            props.block_id.clone(),
        );
        let key = (choice.pipeline.clone(), choice.model.clone());
        use_effect_with(key, move |(pipeline, model)| {
            forecast.set(None);
            if let (Some(model), false) = (model.clone(), pipeline.is_empty()) {
                let pipeline = pipeline.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = api::forecast(&workspace, &block, &pipeline, &model).await;
                    forecast.set(Some(answer.map_err(|failure| explain(&failure))));
                });
            } else if !pipeline.is_empty() {
                forecast.set(Some(Err(
                    "No model is set up for this account, so there is no forecast.".to_owned(),
                )));
            }
        });
    }

    let start = {
        let (choice, refusal, busy, on_run) = (
            choice.clone(),
            refusal.clone(),
            busy.clone(),
            props.on_run.clone(),
        );
        let (workspace, block, titles) = (
            props.workspace_id.clone(),
            props.block_id.clone(),
            titles.clone(),
        );
        move |queue: bool| {
            let (choice, refusal, busy, on_run) = (
                choice.clone(),
                refusal.clone(),
                busy.clone(),
                on_run.clone(),
            );
            let (workspace, block, titles) = (workspace.clone(), block.clone(), titles.clone());
            Callback::from(move |_: MouseEvent| {
                if *busy || choice.pipeline.is_empty() {
                    return;
                }
                busy.set(true);
                refusal.set(None);
                let request = CreateRunRequest {
                    pipeline_id: choice.pipeline.clone(),
                    model_id: choice.model.clone(),
                    queue,
                };
                let (refusal, busy, on_run) = (refusal.clone(), busy.clone(), on_run.clone());
                let (workspace, block, titles) = (workspace.clone(), block.clone(), titles.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match api::start_run(&workspace, &block, &request).await {
                        Ok(run) => on_run.emit(run),
                        Err(failure) => refusal.set(Some(runs::start_refusal(
                            failure.status,
                            failure.code,
                            &failure.message,
                            failure.details.as_ref(),
                            |id| titles.get(id).cloned(),
                        ))),
                    }
                    busy.set(false);
                });
            })
        }
    };

    // One call that answers with the run (cancel, retry, a decision, an approval, the merge).
    let act = {
        let (problem, busy, on_run) = (problem.clone(), busy.clone(), props.on_run.clone());
        move |call: std::rc::Rc<dyn Fn() -> futures_call::RunCall>| {
            let (problem, busy, on_run) = (problem.clone(), busy.clone(), on_run.clone());
            Callback::from(move |_: MouseEvent| {
                if *busy {
                    return;
                }
                busy.set(true);
                problem.set(None);
                let pending = call();
                let (problem, busy, on_run) = (problem.clone(), busy.clone(), on_run.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    match pending.await {
                        Ok(run) => on_run.emit(run),
                        Err(failure) => problem.set(Some(explain(&failure))),
                    }
                    busy.set(false);
                });
            })
        }
    };

    let workspace = props.workspace_id.clone();
    let block = props.block_id.clone();
    let spend_line = html! {
        <p class="muted small" data-testid="block-spend" data-cost={spend.cost.0.to_string()}>
            { if spend.calls == 0 {
                "Nothing spent on this task this month.".to_owned()
            } else {
                format!("Spent on this task this month: {} ({} model call{}, {} tokens)",
                    spend.cost, spend.calls, if spend.calls == 1 { "" } else { "s" },
                    runs::thousands(spend.tokens))
            } }
        </p>
    };

    let run_view = run.as_ref().map(|run| {
        let run_id = run.id.clone();
        let now = js_sys::Date::now() as u64;
        let steps = run.summary.steps.iter().enumerate().map(|(index, step)| {
            step_row(index, step, index == run.summary.current_step && run.status.is_live(), now)
        });
        let pull_request = run.summary.pull_request.as_ref().map(|pull_request| html! {
            <p class="run-pr">
                <a href={pull_request.url.clone()} target="_blank" rel="noopener" data-testid="run-pr">
                    { format!("Pull request #{}", pull_request.number) }
                </a>
                <span class="muted small">{ format!(" on {}", pull_request.branch) }</span>
            </p>
        });
        let failure = run.summary.failure.as_ref().map(|failure| html! {
            <p class="run-failure" role="alert" data-testid="run-failure"
                data-kind={serde_json::to_value(failure.failure.kind).ok().and_then(|v| v.as_str().map(str::to_owned))}>
                { format!("Step {} failed: {}. ", failure.step_index + 1, failure_label(failure.failure.kind)) }
                <span class="muted">{ failure.failure.detail.clone() }</span>
            </p>
        });
        let decision = actions.decision.clone().map(|decision| {
            let options = decision.options.iter().map(|option| {
                let (workspace, run_id, id, choice) =
                    (workspace.clone(), run_id.clone(), decision.id.clone(), option.clone());
                let call = act(std::rc::Rc::new(move || {
                    let (workspace, run_id, id, choice) =
                        (workspace.clone(), run_id.clone(), id.clone(), choice.clone());
                    Box::pin(async move {
                        api::answer_decision(&workspace, &run_id, &id, &AnswerDecisionRequest { choice }).await
                    }) as futures_call::RunCall
                }));
                html! {
                    <button class="button" onclick={call} disabled={*busy} data-testid="decision-option"
                        data-choice={option.clone()}>{ option.clone() }</button>
                }
            });
            html! {
                <div class="run-decision" data-testid="run-decision">
                    <p><strong>{ "The agent asks: " }</strong>{ decision.question.clone() }</p>
                    <div class="run-buttons">{ for options }</div>
                </div>
            }
        });
        let approval = actions.approval.clone().map(|approval| {
            let verdict_call = |verdict: ApprovalVerdictKind| {
                let (workspace, run_id, id, feedback) =
                    (workspace.clone(), run_id.clone(), approval.id.clone(), feedback.clone());
                act(std::rc::Rc::new(move || {
                    let (workspace, run_id, id) = (workspace.clone(), run_id.clone(), id.clone());
                    let text = (*feedback).trim().to_owned();
                    let request = GiveApprovalRequest {
                        verdict,
                        feedback: (!text.is_empty()).then_some(text),
                    };
                    Box::pin(async move {
                        api::give_approval(&workspace, &run_id, &id, &request).await
                    }) as futures_call::RunCall
                }))
            };
            let typed = {
                let feedback = feedback.clone();
                Callback::from(move |event: InputEvent| {
                    feedback.set(event.target_unchecked_into::<HtmlTextAreaElement>().value());
                })
            };
            let no_feedback = feedback.trim().is_empty();
            html! {
                <div class="run-approval" data-testid="run-approval">
                    <textarea rows="3" placeholder="What should change (needed to request changes)"
                        value={(*feedback).clone()} oninput={typed} data-testid="approval-feedback" />
                    <div class="run-buttons">
                        <button class="button primary" onclick={verdict_call(ApprovalVerdictKind::Approve)}
                            disabled={*busy} data-testid="approval-approve">{ "Approve" }</button>
                        <button class="button" onclick={verdict_call(ApprovalVerdictKind::RequestChanges)}
                            disabled={*busy || no_feedback} data-testid="approval-request-changes"
                            title="Send the work back with your feedback">{ "Request changes" }</button>
                    </div>
                </div>
            }
        });
        let simple = |name: &'static str| {
            let (workspace, run_id) = (workspace.clone(), run_id.clone());
            act(std::rc::Rc::new(move || {
                let (workspace, run_id) = (workspace.clone(), run_id.clone());
                Box::pin(async move { api::run_action(&workspace, &run_id, name).await })
                    as futures_call::RunCall
            }))
        };
        let merge = {
            let (workspace, block) = (workspace.clone(), block.clone());
            act(std::rc::Rc::new(move || {
                let (workspace, block) = (workspace.clone(), block.clone());
                Box::pin(async move { api::merge(&workspace, &block).await }) as futures_call::RunCall
            }))
        };
        html! {
            <div class="run-view" data-testid="run-view" data-run-id={run.id.to_string()}
                data-status={run.status.as_str()}>
                <p class="run-headline" data-testid="run-status" data-status={run.status.as_str()}>
                    <span class={classes!("run-badge", runs::run_badge(run).0)}>{ run.summary.pipeline_name.clone() }</span>
                    { run_headline(run) }
                </p>
                <ol class="run-steps">{ for steps }</ol>
                { slot(pull_request) }
                { slot(failure) }
                { slot(decision) }
                { slot(approval) }
                <div class="run-buttons">
                    if actions.merge {
                        <button class="button primary" onclick={merge} disabled={*busy} data-testid="run-merge">{ "Merge the pull request" }</button>
                    }
                    if actions.retry {
                        <button class="button" onclick={simple("retry")} disabled={*busy} data-testid="run-retry">{ "Retry from the failed step" }</button>
                    }
                    if actions.cancel {
                        <button class="button danger" onclick={simple("cancel")} disabled={*busy} data-testid="run-cancel">{ "Cancel the run" }</button>
                    }
                </div>
            </div>
        }
    });

    let start_view = actions.start.then(|| {
        let pick_pipeline = {
            let choice = choice.clone();
            Callback::from(move |event: Event| {
                let value = event.target_unchecked_into::<HtmlSelectElement>().value();
                choice.set(Choice { pipeline: value, ..(*choice).clone() });
            })
        };
        let pick_model = {
            let (choice, on_choose_model) = (choice.clone(), props.on_choose_model.clone());
            Callback::from(move |event: Event| {
                let value = event.target_unchecked_into::<HtmlSelectElement>().value();
                choice.set(Choice { model: Some(value.clone()), ..(*choice).clone() });
                // The pick is the task's choice from now on, for every later run too.
                on_choose_model.emit(value);
            })
        };
        let headroom = props.engine.0.borrow().board.spend.headroom();
        let forecast_line = match &*forecast {
            None => html! { <p class="muted small" data-testid="run-forecast" data-state="loading">{ "Working out what it will likely cost…" }</p> },
            Some(Ok(forecast)) => {
                let tokens: u64 = forecast.steps.iter()
                    .map(|step| step.usage.input_tokens + step.usage.output_tokens).sum();
                let fit = forecast_fit(forecast.total, headroom);
                let over = matches!(fit, runs::ForecastFit::Exceeds { .. });
                html! {
                    <p class={classes!("small", "run-forecast", over.then_some("over"))} data-testid="run-forecast"
                        data-state="ready" data-total={forecast.total.0.to_string()}>
                        { forecast_text(forecast.total, tokens, fit) }
                    </p>
                }
            }
            Some(Err(message)) => html! { <p class="muted small" data-testid="run-forecast" data-state="none">{ message.clone() }</p> },
        };
        let refusal_view = refusal.as_ref().map(|refused| html! {
            <div class="run-refusal" role="alert" data-testid="run-refusal">
                <p>{ refused.message.clone() }</p>
                if refused.offer_queue {
                    <button class="button" onclick={start(true)} disabled={*busy} data-testid="run-queue">{ "Queue it" }</button>
                }
            </div>
        });
        let no_models = choice.models.is_empty();
        let default_line = if runs::offer_as_workspace_default(
            choice.model.as_deref(),
            workspace_default.as_deref(),
            props.manages_settings && !props.read_only,
        ) {
            let make_default = {
                let (model, workspace, problem) =
                    (choice.model.clone(), props.workspace_id.clone(), problem.clone());
                let (engine, app, redraw) = (props.engine.clone(), app.clone(), redraw.clone());
                Callback::from(move |_: MouseEvent| {
                    let request = UpdateWorkspaceRequest {
                        name: None,
                        access_mode: None,
                        default_model_id: Some(model.clone()),
                    };
                    let (workspace, problem, engine, app, redraw) = (
                        workspace.clone(),
                        problem.clone(),
                        engine.clone(),
                        app.clone(),
                        redraw.clone(),
                    );
                    // Other tabs learn it from the live stream; this one from the answer (the hub
                    // does not echo a tab's own write back to it).
                    wasm_bindgen_futures::spawn_local(async move {
                        match api::update_workspace(&workspace, &request).await {
                            Ok(view) => {
                                engine.0.borrow_mut().board.set_workspace(view.workspace.clone());
                                if let Some(app) = &app {
                                    app.dispatch(Action::WorkspaceSaved(view));
                                }
                                problem.set(None);
                                redraw.force_update();
                            }
                            Err(failure) => problem.set(Some(explain(&failure))),
                        }
                    });
                })
            };
            html! {
                <button class="link small" onclick={make_default} data-testid="run-model-make-default"
                    title="Tasks without a model of their own use the workspace's default">
                    { "Make it the workspace's default" }
                </button>
            }
        } else if choice.model.is_some() && choice.model == workspace_default {
            html! { <p class="muted small" data-testid="run-model-is-default">{ "The workspace's default model." }</p> }
        } else {
            Html::default()
        };
        html! {
            <div class="run-start" data-testid="run-start-form">
                <label class="field">
                    <span>{ "Pipeline" }</span>
                    <select onchange={pick_pipeline} data-testid="run-pipeline">
                        { for choice.pipelines.iter().map(|pipeline| {
                            let steps: Vec<&str> = pipeline.steps.iter().map(|step| step.kind.as_str()).collect();
                            html! {
                                <option value={pipeline.id.clone()} selected={pipeline.id == choice.pipeline}>
                                    { format!("{} ({})", pipeline.name, steps.join(" → ")) }
                                </option>
                            }
                        }) }
                    </select>
                </label>
                <label class="field" title="Saved on this task: its runs use this model">
                    <span>{ "Model (this task's)" }</span>
                    <select onchange={pick_model} data-testid="run-model" disabled={no_models || props.read_only}>
                        if let Some(model) = choice.model.as_ref().filter(|model| !choice.models.iter().any(|listing| &listing.model.id == *model)) {
                            <option value={model.clone()} selected=true>{ format!("{model} (not in the catalog)") }</option>
                        }
                        { for choice.models.iter().map(|listing| html! {
                            <option value={listing.model.id.clone()} selected={Some(&listing.model.id) == choice.model.as_ref()}>
                                { if listing.usable_now { listing.model.display_name.clone() }
                                  else { format!("{} (not set up)", listing.model.display_name) } }
                            </option>
                        }) }
                    </select>
                </label>
                { default_line }
                { forecast_line }
                <button class="button primary" onclick={start(false)} disabled={*busy || choice.pipeline.is_empty()}
                    data-testid="run-start">{ if run.is_some() { "Start a new run" } else { "Start the run" } }</button>
                { slot(refusal_view) }
            </div>
        }
    });

    html! {
        <section class="run-panel" data-testid="run-panel" aria-label="Run">
            <h3>{ "Run" }</h3>
            { spend_line }
            { slot(run_view) }
            if let Some(problem) = &*problem {
                <p class="form-error" role="alert" data-testid="run-problem">{ problem.clone() }</p>
            }
            { slot(start_view) }
            if props.read_only && run.is_none() {
                <p class="muted small">{ "No run yet." }</p>
            }
        </section>
    }
}

/// The pending answer of a run call, boxed so the buttons can share one handler.
mod futures_call {
    use std::future::Future;
    use std::pin::Pin;

    pub type RunCall =
        Pin<Box<dyn Future<Output = Result<domain::api::runs::RunRecord, crate::api::ApiFailure>>>>;
}

fn load_choices(
    choice: UseStateHandle<Choice>,
    workspace: WorkspaceId,
    account: AccountId,
    preferred: Option<String>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        let pipelines = api::pipelines(&workspace).await.unwrap_or_default();
        let models = api::models(&account).await.unwrap_or_default();
        let model = runs::initial_model(preferred.as_deref(), None, &models);
        let pipeline = pipelines
            .first()
            .map(|pipeline| pipeline.id.clone())
            .unwrap_or_default();
        choice.set(Choice {
            pipelines,
            models,
            pipeline,
            model,
        });
    });
}

fn step_row(index: usize, step: &StepSummary, current: bool, now_ms: u64) -> Html {
    let status = serde_json::to_value(step.status)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default();
    let elapsed = runs::elapsed_text(step.started_at_ms, step.finished_at_ms, now_ms);
    let progress = step
        .activity
        .as_ref()
        .filter(|_| step.status == StepStatus::Working)
        .map(|activity| {
            let action = activity
                .progress
                .last_action
                .as_deref()
                .map(|action| format!(" · {action}"))
                .unwrap_or_default();
            format!(
                "agent step {} of {}{action}",
                activity.progress.agent_steps, activity.progress.max_agent_steps
            )
        });
    let output = step.output.as_ref().map(output_text);
    let failure = step
        .failure
        .as_ref()
        .filter(|_| step.status == StepStatus::Failed || step.status == StepStatus::Working)
        .map(|failure| {
            format!(
                "{}{}: {}",
                if failure.transient {
                    "retrying — "
                } else {
                    ""
                },
                failure_label(failure.kind),
                failure.detail
            )
        });
    html! {
        <li class={classes!("run-step", status.clone(), current.then_some("current"))} data-testid="run-step"
            data-kind={step.kind.as_str()} data-status={status.clone()} data-current={current.to_string()}>
            <span class="step-number">{ index + 1 }</span>
            <span class="step-kind">{ step.kind.as_str() }</span>
            <span class="step-status">{ step_status_label(step.status) }</span>
            if let Some(elapsed) = elapsed {
                <span class="muted small">{ elapsed }</span>
            }
            if step.attempts > 1 {
                <span class="muted small">{ format!("attempt {}", step.attempts) }</span>
            }
            if let Some(progress) = progress {
                <div class="step-detail muted small" data-testid="step-progress">{ progress }</div>
            }
            if let Some(output) = output {
                <div class="step-detail small" data-testid="step-output">{ output }</div>
            }
            if let Some(failure) = failure {
                <div class="step-detail small bad" data-testid="step-failure">{ failure }</div>
            }
        </li>
    }
}

fn step_status_label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "waiting its turn",
        StepStatus::Working => "working",
        StepStatus::Waiting => "waiting for you",
        StepStatus::Done => "done",
        StepStatus::Skipped => "skipped",
        StepStatus::Failed => "failed",
    }
}

/// A step's answer in a line or two: the design, the estimate, the review, the test report.
fn output_text(output: &domain::agent_output::AgentReply) -> String {
    use domain::agent_output::AgentReply;
    match output {
        AgentReply::Text { text } => shorten(text, 400),
        AgentReply::Estimate(estimate) => format!(
            "complexity {}/5, risk {}/5, impact {}/5 — {}",
            estimate.complexity.score,
            estimate.risk.score,
            estimate.impact.score,
            estimate.complexity.reason
        ),
        AgentReply::ReviewVerdict(verdict) => {
            let comments: Vec<String> = verdict
                .comments
                .iter()
                .take(5)
                .map(|comment| {
                    let severity = serde_json::to_value(comment.severity)
                        .ok()
                        .and_then(|value| value.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    format!("[{severity}] {}", comment.text)
                })
                .collect();
            format!(
                "rated {:.0}%{}{}",
                verdict.rating * 100.0,
                if comments.is_empty() { "" } else { ": " },
                comments.join("; ")
            )
        }
        AgentReply::TestReport(report) => format!(
            "{} — {} run, {} failed. {}",
            if report.passed {
                "tests pass"
            } else {
                "tests fail"
            },
            report.tests_run,
            report.tests_failed,
            shorten(&report.summary, 300)
        ),
        AgentReply::Decision(decision) => format!("asked: {}", decision.question),
    }
}

fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(limit).collect();
    out.push('…');
    out
}
