// Room settings: one dialog (the gear in the header) for what the whole room shares: its title,
// the loop guard, how often rules are re-sent, alert sounds and the saved custom roles.
//
// The server validates (PATCH /api/settings lists every problem in one 400) and publishes a
// `settings` event; every open page applies it at once: the title in the sidebar and the tab,
// `sounds: false` silences every page's alert sound.
import { ApiError, request } from "./api.js";
import { mountArchive } from "./archive.js";
import { $, el, toast } from "./dom.js";
import { icon, pathIcon } from "./icons.js";

const ROLES_MAX = 20;
const ROLE_CHARS = 20;
const TITLE_MAX = 40;
const DEFAULTS = { title: "backchannel", loop_guard_hops: 4, rules_refresh_every: 10, sounds: true, custom_roles: [], preset_roles: [] };
const GEAR = [
  "M12 15a3 3 0 1 0 0-6 3 3 0 0 0 0 6z",
  "M12 19a7 7 0 1 0 0-14 7 7 0 0 0 0 14z",
  "M12 2v3", "M12 19v3", "M2 12h3", "M19 12h3",
  "M4.9 4.9l2.1 2.1", "M17 17l2.1 2.1", "M4.9 19.1L7 17", "M17 7l2.1-2.1",
];
// Which field a sentence of the server's error is about (its detail names the key).
const FIELD_WORDS = [
  ["loop_guard_hops", /loop_guard|hops/i],
  ["rules_refresh_every", /refresh/i],
  ["custom_roles", /role/i],
  ["sounds", /sound/i],
  ["title", /title/i],
];

const settingsApi = {
  get: () => request("GET", "/api/settings"),
  update: (patch) => request("PATCH", "/api/settings", { json: patch }),
};

export class RoomSettings {
  constructor(app) {
    this.app = app;
    this.current = { ...DEFAULTS };
    this.roles = [];
    this.build();
  }

  /** The room's title (the brand and the tab title use it). */
  get title() {
    return this.current.title || DEFAULTS.title;
  }

  /** False when a person switched the room's alert sounds off for everyone. */
  get sounds() {
    return this.current.sounds !== false;
  }

  build() {
    const toggle = $("settings-toggle");
    toggle.append(pathIcon(GEAR, 18));
    toggle.addEventListener("click", () => this.open());
    this.toggle = toggle;

    const dialog = el("dialog", "dialog settings-dialog");
    dialog.setAttribute("aria-labelledby", "settings-heading");
    const form = el("form", "settings-form");
    form.noValidate = true; // the server's rules (and its messages) are the ones that count
    const h2 = el("h2", null, "Room settings");
    h2.id = "settings-heading";
    const intro = el("p", null, "Shared by everyone in this room; changes apply at once on every page.");
    const f = {};
    const field = (key, label, input, hint) => {
      const box = el("div", "field settings-field");
      const lab = el("label", null, label);
      input.id = `setting-${key}`;
      lab.htmlFor = input.id;
      const err = el("p", "field-error small");
      err.id = `setting-${key}-error`;
      const described = [err.id];
      box.append(lab, input);
      if (hint) {
        const h = el("p", "field-hint muted small", hint);
        h.id = `setting-${key}-hint`;
        described.unshift(h.id);
        box.append(h);
      }
      box.append(err);
      input.setAttribute("aria-describedby", described.join(" "));
      f[key] = { input, err };
      return box;
    };
    const title = el("input");
    title.maxLength = TITLE_MAX;
    title.autocomplete = "off";
    const hops = el("input");
    hops.type = "number";
    hops.min = "1";
    hops.max = "50";
    hops.inputMode = "numeric";
    const refresh = el("input");
    refresh.type = "number";
    refresh.min = "0";
    refresh.max = "100";
    refresh.inputMode = "numeric";
    const numbers = el("div", "settings-row");
    numbers.append(
      field("loop_guard_hops", "Loop guard hops", hops, "Agent-to-agent messages in a row before routing pauses (1–50)."),
      field("rules_refresh_every", "Rules refresh", refresh, "Re-send the rules every N wake-ups (0–100; 0 = only after a change)."),
    );
    const sounds = el("input");
    sounds.type = "checkbox";
    const soundsBox = el("div", "settings-check");
    const soundsLabel = el("label", null);
    sounds.id = "setting-sounds";
    soundsLabel.htmlFor = sounds.id;
    soundsLabel.append(sounds, " Alert sounds (off silences every page)");
    const soundsErr = el("p", "field-error small");
    soundsErr.id = "setting-sounds-error";
    sounds.setAttribute("aria-describedby", soundsErr.id);
    soundsBox.append(soundsLabel, soundsErr);
    f.sounds = { input: sounds, err: soundsErr };

    // custom roles: chips with a remove button, and an input to add one
    const roles = el("fieldset", "settings-roles");
    const legend = el("legend", null, "Custom roles");
    this.rolesCount = el("span", "muted small roles-count");
    legend.append(" ", this.rolesCount);
    this.roleList = el("ul", "role-chips");
    this.roleList.setAttribute("aria-label", "Saved custom roles");
    const addRow = el("div", "role-add");
    const roleInput = el("input");
    roleInput.id = "setting-new-role";
    roleInput.maxLength = ROLE_CHARS;
    roleInput.placeholder = "e.g. security";
    roleInput.autocomplete = "off";
    const roleLabel = el("label", "sr-only", "New custom role");
    roleLabel.htmlFor = roleInput.id;
    const addBtn = el("button", "btn small", "Add role");
    addBtn.type = "button";
    addRow.append(roleLabel, roleInput, addBtn);
    const rolesErr = el("p", "field-error small");
    rolesErr.id = "setting-custom_roles-error";
    roleInput.setAttribute("aria-describedby", rolesErr.id);
    this.presetHint = el("p", "field-hint muted small");
    roles.append(legend, this.roleList, addRow, this.presetHint, rolesErr);
    f.custom_roles = { input: roleInput, err: rolesErr };
    addBtn.addEventListener("click", () => this.addRole());
    roleInput.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.addRole();
      }
    });

    const error = el("p", "error small");
    error.setAttribute("role", "alert");
    const row = el("div", "dialog-buttons");
    const cancel = el("button", "btn", "Cancel");
    cancel.type = "button";
    const save = el("button", "btn primary", "Save");
    save.type = "submit";
    row.append(cancel, save);
    form.append(h2, intro, field("title", "Room title", title), numbers, soundsBox, roles, error, row);
    mountArchive(form, error); // Export / Import (issue 12)
    dialog.append(form);
    document.body.append(dialog);
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      const back = this.opener?.offsetParent ? this.opener : document.getElementById("menu-toggle");
      back?.focus();
    });
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.save();
    });
    this.dialog = dialog;
    this.fields = f;
    this.error = error;
    this.saveBtn = save;
  }

  async refresh() {
    try {
      this.apply(await settingsApi.get());
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) toast(`Could not load the room settings: ${err.message}`);
    }
  }

  /** The server's settings (on load and from every `settings` event): shown at once on this page. */
  apply(settings) {
    if (!settings || typeof settings !== "object") return;
    this.current = { ...this.current, ...settings };
    if (this.dialog?.open && this.snapshot) this.merge();
    const brand = document.querySelector(".brand-name");
    if (brand) brand.textContent = this.title;
    this.app.updateTitle();
    const sound = $("sound-toggle");
    if (sound) {
      sound.classList.toggle("room-silenced", !this.sounds);
      sound.title = this.sounds ? "Sound for alerts" : "Alert sounds are off for this room (room settings)";
    }
  }

  open(opener = this.toggle) {
    this.opener = opener;
    const c = this.current;
    const f = this.fields;
    f.title.input.value = c.title ?? "";
    f.loop_guard_hops.input.value = String(c.loop_guard_hops ?? "");
    f.rules_refresh_every.input.value = String(c.rules_refresh_every ?? "");
    f.sounds.input.checked = c.sounds !== false;
    f.custom_roles.input.value = "";
    this.roles = [...(c.custom_roles || [])];
    // What the form showed: Save sends only what the person changed since (item: lost updates).
    this.snapshot = { ...this.formValues(), custom_roles: [...this.roles] };
    const presets = c.preset_roles || [];
    this.presetHint.textContent = presets.length ? `Built in: ${presets.join(", ")}.` : "";
    this.renderRoles();
    this.clearErrors();
    this.dialog.showModal();
    f.title.input.focus();
    f.title.input.select();
  }

  clearErrors() {
    this.error.textContent = "";
    for (const { input, err } of Object.values(this.fields)) {
      err.textContent = "";
      input.removeAttribute("aria-invalid");
    }
  }

  renderRoles() {
    const chips = this.roles.map((role, i) => {
      const li = el("li", "role-chip");
      li.append(el("span", null, role));
      const x = el("button", "icon-btn small");
      x.type = "button";
      x.setAttribute("aria-label", `Remove role ${role}`);
      x.title = `Remove ${role}`;
      x.append(icon("x", 14));
      x.addEventListener("click", () => {
        this.roles.splice(i, 1);
        this.renderRoles();
        const next = this.roleList.querySelectorAll("button")[Math.min(i, this.roles.length - 1)];
        (next || this.fields.custom_roles.input).focus();
      });
      li.append(x);
      return li;
    });
    if (!chips.length) chips.push(el("li", "muted small role-none", "None saved yet."));
    this.roleList.replaceChildren(...chips);
    this.rolesCount.textContent = `${this.roles.length}/${ROLES_MAX}`;
  }

  addRole() {
    const { input, err } = this.fields.custom_roles;
    const role = input.value.trim();
    err.textContent = "";
    input.removeAttribute("aria-invalid");
    const problem = !role
      ? "Type a role first."
      : this.roles.some((r) => r.toLowerCase() === role.toLowerCase())
        ? `${role} is already saved.`
        : this.roles.length >= ROLES_MAX
          ? `At most ${ROLES_MAX} custom roles: remove one first.`
          : "";
    if (problem) {
      err.textContent = problem;
      input.setAttribute("aria-invalid", "true");
      return input.focus();
    }
    this.roles.push(role);
    input.value = "";
    this.renderRoles();
    input.focus();
  }

  /** The form's scalar fields as the server wants them (a bad number is sent as typed: it explains). */
  formValues() {
    const f = this.fields;
    const num = (input) => (input.value.trim() === "" || Number.isNaN(input.valueAsNumber) ? input.value : input.valueAsNumber);
    return {
      title: f.title.input.value.trim(),
      loop_guard_hops: num(f.loop_guard_hops.input),
      rules_refresh_every: num(f.rules_refresh_every.input),
      sounds: f.sounds.input.checked,
    };
  }

  /** The person's role edits since the dialog opened, applied to `base` (the latest saved list). */
  rolesWithEdits(base) {
    const lower = (list) => new Set(list.map((r) => r.toLowerCase()));
    const had = lower(this.snapshot.custom_roles);
    const now = lower(this.roles);
    const added = this.roles.filter((r) => !had.has(r.toLowerCase()));
    const removed = new Set([...had].filter((r) => !now.has(r)));
    const kept = base.filter((r) => !removed.has(r.toLowerCase()));
    const known = lower(kept);
    return [...kept, ...added.filter((r) => !known.has(r.toLowerCase()))];
  }

  /**
   * A `settings` event while the dialog is open (someone else saved, or an agent's role picker
   * saved a custom role): fields this person has not touched follow it, and their role edits are
   * re-applied to the new list, so Save never sends back someone else's old values.
   */
  merge() {
    const c = this.current;
    const f = this.fields;
    const shown = this.formValues();
    for (const key of ["title", "loop_guard_hops", "rules_refresh_every", "sounds"]) {
      if (JSON.stringify(shown[key]) !== JSON.stringify(this.snapshot[key])) continue; // edited: theirs
      if (key === "sounds") f.sounds.input.checked = c.sounds !== false;
      else f[key].input.value = String(c[key] ?? "");
      this.snapshot[key] = this.formValues()[key];
    }
    const roles = this.rolesWithEdits([...(c.custom_roles || [])]);
    this.snapshot.custom_roles = [...(c.custom_roles || [])];
    this.roles = roles;
    const focused = this.roleList.contains(document.activeElement);
    this.renderRoles();
    if (focused) this.fields.custom_roles.input.focus();
  }

  /** Only what the person changed goes to the server; a 400 puts each of its problems under its field. */
  async save() {
    const c = this.current;
    const shown = this.formValues();
    const patch = {};
    for (const [key, value] of Object.entries(shown)) {
      if (JSON.stringify(value) !== JSON.stringify(this.snapshot[key])) patch[key] = value;
    }
    const roles = this.rolesWithEdits([...(c.custom_roles || [])]);
    if (JSON.stringify(roles) !== JSON.stringify(c.custom_roles || [])) patch.custom_roles = roles;
    this.clearErrors();
    if (!Object.keys(patch).length) return this.dialog.close();
    this.saveBtn.disabled = true;
    try {
      this.apply(await settingsApi.update(patch));
      this.dialog.close();
      toast("Room settings saved.");
    } catch (err) {
      this.showErrors(err);
    } finally {
      this.saveBtn.disabled = false;
    }
  }

  showErrors(err) {
    const detail = err.message || String(err);
    const rest = [];
    let first = null;
    for (const part of detail.split(/;\s+|\n+/).filter(Boolean)) {
      const hit = FIELD_WORDS.find(([, re]) => re.test(part));
      if (!hit) {
        rest.push(part);
        continue;
      }
      const { input, err: box } = this.fields[hit[0]];
      box.textContent = box.textContent ? `${box.textContent} ${part}` : part;
      input.setAttribute("aria-invalid", "true");
      first ??= input;
    }
    this.error.textContent = rest.length ? rest.join(" ") : first ? "Some settings were not saved: see above." : detail;
    (first || this.saveBtn).focus();
  }
}
