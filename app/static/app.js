// Progressive enhancement: without JS the form posts and the server renders the result.
(function () {
  const form = document.getElementById("upload-form");
  const input = document.getElementById("file");
  const preview = document.getElementById("preview");
  const button = document.getElementById("classify");
  const result = document.getElementById("result");

  input.addEventListener("change", () => {
    const f = input.files[0];
    if (!f) { preview.hidden = true; return; }
    if (preview.src) URL.revokeObjectURL(preview.src);
    preview.src = URL.createObjectURL(f);
    preview.hidden = false;
  });

  function show(rows) {
    result.replaceChildren(...rows);
    result.hidden = false;
  }
  function row(label, id, text) {
    const p = document.createElement("p");
    const l = document.createElement("span");
    l.className = "label"; l.textContent = label;
    const v = document.createElement(id === "category" ? "strong" : "span");
    v.id = id; v.textContent = text;
    p.append(l, " ", v);
    return p;
  }
  function error(text) {
    const p = document.createElement("p");
    p.className = "error"; p.id = "error"; p.textContent = text;
    show([p]);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!input.files[0]) { error("Choose a photo first."); return; }
    button.disabled = true;
    try {
      const resp = await fetch(form.action, {
        method: "POST", body: new FormData(form), headers: { Accept: "application/json" },
      });
      const body = await resp.json().catch(() => ({ error: "HTTP " + resp.status }));
      if (!resp.ok) { error(body.error || "HTTP " + resp.status); return; }
      show([
        row("Category", "category", body["class"]),
        row("Confidence", "confidence", (body.confidence * 100).toFixed(1) + "%"),
        row("Inference time", "inference-time", body.inference_ms.toFixed(1) + " ms"),
      ]);
    } catch (e) {
      error("Could not reach the classifier: " + e.message);
    } finally {
      button.disabled = false;
    }
  });
})();
