"""About tab: what the app shows, the model cards (card.json in each model directory) and the licences."""
from __future__ import annotations

import gradio as gr

from app.studio import Studio
from avmoe.config import TASKS, VARIANTS

ABOUT = """
**AVMoE Studio** explores AVMoE ("Mixtures of Experts for Audio-Visual Learning", NeurIPS 2024): frozen visual and
audio encoders with small trainable adapters beside their blocks, mixed per second by a router. Cross-modal experts
(cma) read the other modality; unimodal experts (ua) do not. When a modality is missing or noisy the router can move
weight to the unimodal experts.

- **Predictions**: every task model on the clip under the chosen condition.
- **Router explorer**: the routers' weights per layer and second, for two conditions side by side.
- **Intervene**: override the routers and see what every task's output does.
- **Robustness**: the variants (avmoe, cma-only, ua-only, frozen) under every condition.
- **Features**: t-SNE or UMAP of pooled features over the evaluation set.
- **Figures**: the paper-style figures as PNG and PDF.

Code: MIT licence. Example clips: see their licences below.
"""


def models_table(studio: Studio) -> str:
    """Markdown table: which (task, variant) models exist under the models root."""
    head = "| task | " + " | ".join(VARIANTS) + " |\n|---|" + "---|" * len(VARIANTS)
    rows = [f"| {task} | " + " | ".join("yes" if task in studio.models.get(v, {}) else "-" for v in VARIANTS) + " |"
            for task in TASKS]
    return f"Models under `{studio.models_root}`:\n\n{head}\n" + "\n".join(rows)


def build(studio: Studio) -> None:
    with gr.Tab("About", id="about"):
        gr.Markdown(ABOUT)
        gr.Markdown(models_table(studio))
        with gr.Accordion("Model cards", open=False):
            cards = studio.cards()
            if not cards:
                gr.Markdown("No models found, so no model cards.")
            for name, card in cards.items():
                gr.Markdown(f"**{name}**" + ("" if card else ": no card.json"))
                if card:
                    gr.JSON(card, open=False)
        licences = studio.examples_dir / "LICENSES.md"
        with gr.Accordion("Licences of the example clips", open=False):
            gr.Markdown(licences.read_text() if licences.is_file() else "No example clips (run "
                        "`python -m app.make_examples`).")
