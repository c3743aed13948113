// model runner monitor: the jobs page and the job page. Plain browser JavaScript, no library, nothing fetched from
// the internet. Every value from the tables is put on the page as text (textContent, SVG text nodes, attributes set
// with setAttribute): never as HTML.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, text) {
    const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "-";
    if (seconds < 1) return Math.round(seconds * 1000) + " ms";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    const m = Math.floor(seconds / 60), s = Math.round(seconds % 60);
    if (m < 60) return m + " min " + s + " s";
    return Math.floor(m / 60) + " h " + (m % 60) + " min";
  }

  function number(n) {
    return n === null || n === undefined ? "-" : Number(n).toLocaleString("en-US");
  }

  function shortTime(iso) {
    return iso ? iso.replace("T", " ").replace("+00:00", "") : "-";
  }

  const banner = document.getElementById("banner");
  function showError(message) {
    banner.textContent = message;
    banner.hidden = false;
  }
  function clearError() {
    banner.hidden = true;
    banner.textContent = "";
  }

  async function getJSON(url) {
    let response;
    try {
      response = await fetch(url, { cache: "no-store" });
    } catch (err) {
      throw new Error("the monitor server cannot be reached (" + err.message + "); retrying");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      body = null;
    }
    if (!response.ok) {
      const error = new Error((body && body.error) || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  function jobPath(imageId) {
    return "/jobs/" + encodeURIComponent(imageId);
  }

  function apiPath(imageId) {
    return "/api/jobs/" + encodeURIComponent(imageId);
  }

  function setProgress(bar, done, total) {
    const fill = bar.firstElementChild;
    const ratio = total ? Math.min(1, done / total) : 0;
    fill.style.width = (ratio * 100).toFixed(1) + "%";
  }

  // -- the jobs page ------------------------------------------------------------------------------------------------

  function jobsPage() {
    const body = document.querySelector("#jobs tbody");
    const empty = document.getElementById("empty");
    const note = document.getElementById("scan-note");
    document.getElementById("open-job").addEventListener("submit", (event) => {
      event.preventDefault();
      const id = document.getElementById("open-id").value.trim();
      if (id) window.location.href = jobPath(id);
    });

    async function refresh() {
      try {
        const data = await getJSON("/api/jobs?limit=100");
        clearError();
        const rows = [];
        for (const job of data.jobs) {
          const tr = el("tr", { "data-image-id": job.image_id });
          const idCell = el("td", { class: "id" });
          idCell.appendChild(el("a", { href: jobPath(job.image_id) }, job.image_id));
          tr.appendChild(idCell);
          const stateCell = el("td");
          stateCell.appendChild(el("span", { class: "pill " + job.state }, job.state));
          tr.appendChild(stateCell);
          const progress = el("td");
          const bar = el("span", { class: "bar" });
          bar.appendChild(el("span"));
          setProgress(bar, job.regions_done, job.region_count);
          progress.appendChild(bar);
          progress.appendChild(document.createTextNode(" " + job.regions_done + " / " + (job.region_count ?? "?")));
          tr.appendChild(progress);
          tr.appendChild(el("td", { class: "num" }, number(job.region_error)));
          tr.appendChild(el("td", { class: "num" }, duration(job.duration_seconds)));
          tr.appendChild(el("td", {}, shortTime(job.start_time)));
          tr.appendChild(el("td", {}, job.model_name ?? "-"));
          rows.push(tr);
        }
        body.replaceChildren(...rows);
        empty.hidden = rows.length > 0;
        const scan = data.scan;
        let text = "Read " + number(scan.items_read) + " job items with a scan of at most " + number(scan.scan_limit) +
          " (" + scan.read_units + " read units) at " + shortTime(scan.read_at) + "; shown newest first" +
          (data.total_listed > data.jobs.length ? " (the " + data.jobs.length + " newest)" : "") + ".";
        if (scan.truncated) {
          text += " The table holds more jobs than the scan limit: newer jobs may be missing (open one by id).";
        }
        note.textContent = text;
      } catch (err) {
        showError("Cannot list jobs: " + err.message);
      }
    }
    refresh();
    window.setInterval(refresh, 5000);
  }

  // -- the job page -------------------------------------------------------------------------------------------------

  function jobPage() {
    const imageId = document.body.dataset.imageId;
    const refreshMs = Number(document.body.dataset.refreshMs) || 3000;
    const api = apiPath(imageId);
    const view = document.getElementById("view");
    const canvas = document.getElementById("canvas");
    const svg = document.getElementById("regions");
    const tooltip = document.getElementById("tooltip");
    const live = document.getElementById("live");
    document.getElementById("download").setAttribute("href", api + "/features.geojson");

    const state = { job: null, regions: [], overview: null, selected: null, overviewAt: 0, timer: null };
    window.monitorState = state; // for tests and the curious: what the page last read

    function size() {
      const job = state.job;
      if (job && job.width && job.height) return [job.width, job.height];
      let w = 1, h = 1;
      for (const region of state.regions) {
        if (region.box) {
          w = Math.max(w, region.box[0] + region.box[2]);
          h = Math.max(h, region.box[1] + region.box[3]);
        }
      }
      return [w, h];
    }

    function layout() {
      const [w, h] = size();
      view.style.aspectRatio = w + " / " + h;
      svg.setAttribute("viewBox", "0 0 " + w + " " + h);
      svg.setAttribute("preserveAspectRatio", "none");
    }

    function showJob(job) {
      state.job = job;
      document.getElementById("title").textContent = job.image_id;
      const pill = document.getElementById("state");
      pill.textContent = job.state;
      pill.className = "pill " + job.state;
      setProgress(document.getElementById("progress-bar"), job.regions_done, job.region_count);
      document.getElementById("progress-text").textContent =
        job.regions_done + " / " + (job.region_count ?? "?") + " regions";
      document.getElementById("failed").textContent = number(job.region_error) + " failed";
      document.getElementById("duration").textContent =
        duration(job.duration_seconds) + (job.end_time ? "" : " so far");
      const parts = [];
      if (job.width) parts.push(job.width + " x " + job.height + " px");
      if (job.tile_size) parts.push("tiles " + job.tile_size.join(" x ") +
        (job.tile_overlap ? ", overlap " + job.tile_overlap.join(" x ") : ""));
      if (job.model_name) parts.push("model " + job.model_name);
      parts.push("started " + shortTime(job.start_time));
      if (job.end_time) parts.push("ended " + shortTime(job.end_time));
      if (job.job_id) parts.push("job " + job.job_id);
      document.getElementById("details").textContent = parts.join(" · ");
    }

    function regionText(region) {
      return [
        "region " + region.region_id,
        "state " + region.state + " (" + (region.status ?? "-") + ")",
        "tiles " + region.tiles_succeeded + " succeeded, " + region.tiles_failed + " failed" +
          (region.tiles_total !== null && region.tiles_total !== undefined ? " of " + region.tiles_total : ""),
        "retries " + region.retries,
        "duration " + duration(region.duration_seconds),
      ].join("\n") + (region.message ? "\nmessage " + region.message : "");
    }

    function drawRegions() {
      layout();
      const nodes = [];
      const counts = { started: 0, succeeded: 0, retried: 0, failed: 0 };
      for (const region of state.regions) {
        counts[region.state] = (counts[region.state] || 0) + 1;
        if (!region.box) continue;
        const [x, y, w, h] = region.box;
        const rect = el("svg:rect", {
          x: x, y: y, width: w, height: h,
          class: "region " + region.state + (state.selected === region.region_id ? " selected" : ""),
          "data-region-id": region.region_id,
          "data-state": region.state,
        });
        rect.setAttribute("aria-label", regionText(region));
        rect.setAttribute("tabindex", "0");
        rect.setAttribute("role", "button");
        rect.addEventListener("click", () => selectRegion(region.region_id));
        rect.addEventListener("keydown", (event) => {
          if (event.key === "Enter" || event.key === " ") {
            event.preventDefault();
            selectRegion(region.region_id);
          }
        });
        rect.addEventListener("mousemove", (event) => {
          tooltip.textContent = regionText(region);
          tooltip.hidden = false;
          const box = view.getBoundingClientRect();
          tooltip.style.left = Math.min(event.clientX - box.left + 12, box.width - 200) + "px";
          tooltip.style.top = (event.clientY - box.top + 12) + "px";
        });
        rect.addEventListener("mouseleave", () => { tooltip.hidden = true; });
        nodes.push(rect);
      }
      svg.replaceChildren(...nodes);
      svg.classList.toggle("hide-regions", !document.getElementById("show-regions").checked);
      document.getElementById("region-counts").textContent = state.regions.length + " regions: " +
        counts.succeeded + " succeeded, " + counts.retried + " retried, " + counts.failed + " failed, " +
        counts.started + " started";
    }

    function drawCanvas() {
      const [w, h] = size();
      const ratio = window.devicePixelRatio || 1;
      const box = view.getBoundingClientRect();
      canvas.width = Math.max(1, Math.round(box.width * ratio));
      canvas.height = Math.max(1, Math.round(box.height * ratio));
      const ctx = canvas.getContext("2d");
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      const sx = canvas.width / w, sy = canvas.height / h;
      const overview = state.overview;
      if (!overview) return;
      const density = overview.density;
      if (document.getElementById("show-density").checked && density && density.max > 0) {
        for (let row = 0; row < density.rows; row++) {
          for (let col = 0; col < density.cols; col++) {
            const n = density.counts[row * density.cols + col];
            if (!n) continue;
            ctx.fillStyle = "rgba(255, 255, 255, " + (0.02 + 0.3 * n / density.max).toFixed(3) + ")";
            ctx.fillRect(col * density.cell[0] * sx, row * density.cell[1] * sy,
              density.cell[0] * sx, density.cell[1] * sy);
          }
        }
      }
      if (document.getElementById("show-seams").checked) {
        ctx.strokeStyle = "rgba(226, 232, 240, 0.45)";
        ctx.lineWidth = 1;
        ctx.beginPath();
        for (const [x, y, tw, th] of overview.tiles) {
          ctx.rect(Math.round(x * sx) + 0.5, Math.round(y * sy) + 0.5, Math.round(tw * sx), Math.round(th * sy));
        }
        ctx.stroke();
      }
      if (document.getElementById("show-boxes").checked) {
        ctx.strokeStyle = "rgba(34, 211, 238, 0.85)";
        ctx.lineWidth = Math.max(1, ratio * 0.75);
        ctx.beginPath();
        for (const [x0, y0, x1, y1] of overview.boxes) {
          ctx.rect(x0 * sx, y0 * sy, Math.max(1, (x1 - x0) * sx), Math.max(1, (y1 - y0) * sy));
        }
        ctx.stroke();
      }
    }

    function showOverviewNote() {
      const overview = state.overview;
      const note = document.getElementById("feature-note");
      if (!overview) return;
      let text = number(overview.count) + " features";
      if (overview.without_image_bounds) {
        text += " (" + number(overview.without_image_bounds) + " without image coordinates, not drawn)";
      }
      if (overview.sampled) {
        text += "; boxes: a uniform sample of " + number(overview.boxes.length) + " (the cap), density: all " +
          number(overview.count);
      }
      text += "; " + number(overview.tiles.length) + " tiles recorded (thin lines: tile seams, overlaps show double)";
      if (overview.density && overview.density.cols) {
        text += "; density cell " + overview.density.cell.join(" x ") + " px";
      }
      note.textContent = text + ".";
    }

    async function selectRegion(regionId) {
      state.selected = regionId;
      for (const rect of svg.querySelectorAll("rect.region")) {
        rect.classList.toggle("selected", rect.getAttribute("data-region-id") === regionId);
      }
      await refreshRegion();
    }

    async function refreshRegion() {
      if (state.selected === null) return;
      let region;
      try {
        region = await getJSON(api + "/regions/" + encodeURIComponent(state.selected));
      } catch (err) {
        showError("Cannot read region: " + err.message);
        return;
      }
      document.getElementById("region-hint").hidden = true;
      const facts = document.getElementById("region-facts");
      const rows = [
        ["id", region.region_id], ["state", region.state], ["status", region.status ?? "-"],
        ["tiles", region.tiles_succeeded + " succeeded, " + region.tiles_failed + " failed" +
          (region.tiles_total !== null && region.tiles_total !== undefined ? " of " + region.tiles_total : "")],
        ["retries", region.retries], ["duration", duration(region.duration_seconds)],
        ["started", shortTime(region.start_time)], ["ended", shortTime(region.end_time)],
        ["bounds", region.box ? region.box.join(", ") + " (x, y, w, h)" : "-"],
        ["message", region.message ?? "-"],
      ];
      const nodes = [];
      for (const [name, value] of rows) {
        nodes.push(el("dt", {}, name));
        nodes.push(el("dd", { "data-fact": name }, value));
      }
      facts.replaceChildren(...nodes);
      facts.hidden = false;
      const tiles = document.getElementById("tiles");
      const failedList = document.getElementById("failed-tiles");
      const shapes = [];
      const failed = [];
      if (region.box) {
        const [rx, ry, rw, rh] = region.box;
        tiles.setAttribute("viewBox", rx + " " + ry + " " + rw + " " + rh);
        tiles.style.aspectRatio = rw + " / " + rh;
        for (const tile of region.tiles) {
          const [x, y, w, h] = tile.box;
          const rect = el("svg:rect", { x: x, y: y, width: w, height: h, class: "tile " + tile.state });
          rect.appendChild(el("svg:title", {}, tile.state + " tile at x " + x + ", y " + y + " (" + w + " x " + h + ")"));
          shapes.push(rect);
          if (tile.state === "failed") {
            shapes.push(el("svg:line", { x1: x, y1: y, x2: x + w, y2: y + h, class: "cross" }));
            shapes.push(el("svg:line", { x1: x + w, y1: y, x2: x, y2: y + h, class: "cross" }));
            failed.push(el("li", { class: "failed-tile" }, "x " + x + ", y " + y + ", " + w + " x " + h));
          }
        }
        tiles.removeAttribute("hidden"); // an SVG element has no .hidden property
      } else {
        tiles.setAttribute("hidden", "");
      }
      tiles.replaceChildren(...shapes);
      failedList.replaceChildren(...failed);
      document.getElementById("failed-title").hidden = failed.length === 0;
      document.getElementById("tiles-note").textContent = region.tiles.length + " tiles recorded" +
        (failed.length ? ", " + failed.length + " failed (crossed)" : "");
    }

    async function refreshOverview(force) {
      const now = Date.now();
      if (!force && now - state.overviewAt < Math.max(10000, refreshMs * 3)) return;
      state.overviewAt = now;
      state.overview = await getJSON(api + "/features/overview");
      showOverviewNote();
      drawCanvas();
    }

    async function refresh() {
      try {
        const job = await getJSON(api);
        const regions = await getJSON(api + "/regions");
        clearError();
        showJob(job);
        state.regions = regions.regions;
        drawRegions();
        drawCanvas();
        await refreshRegion();
        const running = job.state === "running";
        await refreshOverview(!running && !state.finalOverview);
        if (!running) state.finalOverview = true;
        live.textContent = running ? "live: refreshing every " + refreshMs / 1000 + " s" :
          "job ended: not refreshing";
        state.refreshedAt = new Date().toISOString();
        state.refreshes = (state.refreshes || 0) + 1;
        if (!running) return;
      } catch (err) {
        if (err.status === 404) {
          showError(err.message);
        } else {
          showError("Cannot read the job: " + err.message + " (retrying)");
        }
      }
      state.timer = window.setTimeout(refresh, refreshMs);
    }

    for (const id of ["show-density", "show-boxes", "show-seams"]) {
      document.getElementById(id).addEventListener("change", drawCanvas);
    }
    document.getElementById("show-regions").addEventListener("change", drawRegions);
    window.addEventListener("resize", () => { layout(); drawCanvas(); });
    layout();
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "jobs") jobsPage();
    if (page === "job") jobPage();
  });
})();
