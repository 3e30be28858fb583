//! The application shell.

use yew::prelude::*;

use crate::components::health_badge::HealthBadge;

#[function_component]
pub fn App() -> Html {
    html! {
        <div class="app">
            <header class="topbar">
                <span class="brand">{ "cat-factory" }</span>
                <HealthBadge />
            </header>
            <main class="welcome">
                <h1>{ "Design the system. Let the agents build it." }</h1>
                <p>
                    { "Sketch services, modules and tasks on a board, attach requirements, and run agent \
                       pipelines that open real pull requests." }
                </p>
            </main>
        </div>
    }
}
