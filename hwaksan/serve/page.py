"""The page's Gradio layout: one widget per `form.WIDGETS` line, wired to `serve.actions`.

Only this module imports Gradio. The page loads no font or script from outside the machine
(system fonts; analytics off), and binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine

import gradio as gr  # noqa: E402  (after the setting above)

from hwaksan.errors import HwaksanError  # noqa: E402
from hwaksan.sampling.registry import sampler_names  # noqa: E402
from hwaksan.serve.actions import generate_images, model_form  # noqa: E402
from hwaksan.serve.form import WIDGETS, Widget  # noqa: E402
from hwaksan.serve.models import Models  # noqa: E402
from hwaksan.serve.request import MAX_IMAGES, one_sentence  # noqa: E402

THEME = gr.themes.Default(
    font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
)  # no web fonts


def _widget(name: str, widget: Widget) -> gr.components.Component:
    """The Gradio component for one input (hidden until a model takes it)."""
    common = dict(label=widget.label, elem_id=name, visible=False)
    if widget.kind == "text":
        return gr.Textbox(value=widget.default or "", info=widget.info, lines=1, **common)
    if widget.kind == "number":
        return gr.Number(value=widget.default, info=widget.info, **common)
    if widget.kind == "image":
        return gr.Image(type="pil", sources=["upload", "clipboard"], **common)
    if widget.kind == "check":
        return gr.Checkbox(value=bool(widget.default), info=widget.info, **common)
    return gr.Dropdown(choices=[], value=None, info=widget.info, **common)  # "class"


def build_page(models: Models) -> gr.Blocks:
    """The page: model chooser, the model's inputs, sampler settings, adapters, Generate; then
    a status line (errors as one sentence) and a gallery with download."""
    with gr.Blocks(title="hwaksan") as page:
        gr.Markdown("## hwaksan: generate\nChoose a model; the fields follow what it takes.")
        with gr.Row():
            with gr.Column(scale=2):
                model = gr.Dropdown(models.choices, value=models.choices[0], label="Model",
                                    info="a shipped name, or type a model folder's path",
                                    allow_custom_value=True, elem_id="model")  # fmt: skip
                about = gr.Markdown(elem_id="about")
                fields = {name: _widget(name, widget) for name, widget in WIDGETS.items()}
                with gr.Row():
                    sampler = gr.Dropdown(sampler_names(), label="Sampler", elem_id="sampler")
                    steps = gr.Number(label="Steps", precision=0, elem_id="steps")
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, elem_id="seed")
                    count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images",
                                      elem_id="count")  # fmt: skip
                with gr.Accordion("Adapters: LoRA, textual inversion, ControlNet, IP-Adapter",
                                  open=False):  # fmt: skip
                    shipped = gr.Dropdown(models.adapter_choices, value=[], multiselect=True,
                                          label="Shipped adapters", elem_id="adapters",
                                          info="each must fit the model")  # fmt: skip
                    uploads = [gr.File(file_count="multiple", elem_id=f"upload_{i}",
                                       label=f"Adapter {i}: a LoRA file, or an adapter folder's "
                                       "files (config.json, adapter.safetensors)")
                               for i in (1, 2)]  # fmt: skip
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column(scale=3):
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                gallery = gr.Gallery(label="Images", format="png", columns=4, elem_id="gallery",
                                     buttons=["download", "fullscreen"])  # fmt: skip
        adapters = [shipped, *uploads]
        settings = [model, sampler, steps, seed, count, *adapters]
        _wire(models, page, [model, *adapters], fields, [sampler, steps, about, status], settings,
              button, [gallery, status])  # fmt: skip
    return page


def _adapters(shipped, *uploads) -> list:
    """The adapter widgets' values as `Models.pipeline` takes them: shipped names, then each
    upload's files."""
    return [*(shipped or []), *(files for files in uploads if files)]


def _wire(models, page, chosen, fields, model_outputs, settings, button, outputs) -> None:
    """The events: choosing a model or adapters sets the fields; Generate (or Enter in a text
    field) runs. `chosen`: the model widget, then the adapter widgets."""
    names = list(fields)

    def on_model(name, *adapters):
        try:
            form = model_form(models, name, _adapters(*adapters))
        except (HwaksanError, ValueError) as e:
            return [gr.update() for _ in names] + [gr.update()] * 3 + ["error: " + one_sentence(e)]
        shown = [gr.update(visible=n in form.inputs) for n in names]
        if "class_labels" in names and form.class_choices:
            shown[names.index("class_labels")] = gr.update(
                visible=True, choices=form.class_choices, value=form.class_choices[0][1]
            )
        return shown + [form.sampler, form.steps, form.about, ""]

    def on_generate(name, sampler, steps, seed, n, shipped, upload_1, upload_2, *values,
                    progress=gr.Progress()):  # fmt: skip
        result = generate_images(
            models, name, dict(sampler=sampler, steps=steps, seed=seed, n=n),
            dict(zip(names, values)), _adapters(shipped, upload_1, upload_2),
            report=lambda fraction, text: progress(fraction, desc=text),
        )  # fmt: skip
        return (gr.skip() if result.images is None else result.images), result.message

    field_list = list(fields.values())
    page.load(on_model, chosen, field_list + model_outputs)
    for widget in chosen:
        widget.change(on_model, chosen, field_list + model_outputs)
    run = dict(
        fn=on_generate, inputs=settings + field_list, outputs=outputs, concurrency_limit=None
    )  # one at a time per model: Models.turn
    button.click(**run)
    for component in field_list:
        if isinstance(component, gr.Textbox):
            component.submit(**run)


def serve_page(models: Models, host: str = "127.0.0.1", port: int = 7860, share: bool = False,
               block: bool = True) -> gr.Blocks:  # fmt: skip
    """Launch the page on host:port (a public Gradio link only with `share`); blocks until
    interrupted unless `block` is False (then `.close()` the returned page)."""
    page = build_page(models).queue(default_concurrency_limit=None)
    try:
        page.launch(server_name=host, server_port=port, share=share, prevent_thread_lock=True,
                    theme=THEME, quiet=True, footer_links=[])  # fmt: skip
    except OSError as e:
        why = one_sentence(e).split(". ")[0]  # Gradio's advice names its own settings
        raise HwaksanError(
            f"cannot serve on {host}:{port}: {why}; try another --port or --host"
        ) from e
    print(f"hwaksan serve: {page.local_url}" + (f" and {page.share_url}" if page.share_url else ""))
    if block:
        page.block_thread()
    return page
