/*
 * What every node's editor definition shares, loaded from resources/ (no CDN) by each
 * nodes/<type>/<type>.html before its own script; the first load defines window.QeNode:
 *
 * - QeNode.labels(type, key): paletteLabel, label (the name, else `this[key]`, else the
 *   palette label), labelStyle, inputLabels and outputLabels (`<type>.label.input`,
 *   `.output`, or `.output1`, `.output2`... on a node of several outputs) from the node's
 *   i18n catalog; QeNode.configLabels(type, key): paletteLabel and label of a config node.
 * - QeNode.defaults(): the `name` and `coordinator` of a flow node's `defaults`.
 * - QeNode.number(value, ok): a number field: blank, an env var `${...}`, or a number that
 *   RED.validators.number accepts and `ok` passes.
 * - QeNode.form(type): expands the row markers of the node's edit template, once, when the
 *   .html registers the type; every dialog opens with the `name` row, then the
 *   `coordinator` row on a node that has one, so templates leave these two out. Node-RED copies the template's text into the dialog each time
 *   it opens and binds `node-input-<prop>` (`node-config-input-<prop>` on a config node)
 *   before oneditprepare, so the rows must be in that text; Node-RED appends a node's .html
 *   whole (jQuery inserts every element, then runs the scripts), so the template is there
 *   when the registering script calls form(). A marker is one line,
 *   `<div data-qe-row="<prop>" ...></div>`, with the attributes:
 *     data-icon="fa-..."     the label's icon (name: fa-tag, coordinator: fa-building);
 *     data-width="70%"       the input's width;
 *     data-placeholder       the input's placeholder `<type>.placeholder.<prop>` (name: its
 *                            label);
 *     data-unit="seconds"    a unit after the input, `<type>.label.<unit>`;
 *     data-input="password", "checkbox" (with the text `<type>.label.<data-text or
 *                            <prop>Text>`) or "select" (data-options="a b c=k": the values,
 *                            each shown as `<type>.<prop>.<k or value>`);
 *     data-label="<key>"     the label's key when it is not `<prop>`;
 *     data-class, data-style the row's extra class and style.
 *   The rows keep the ids and i18n keys of the templates they replace.
 */
(() => {
  if (window.QeNode) return;
  const RED = window.RED;

  const paletteLabel = (type) =>
    function () {
      return this._(`${type}.paletteLabel`);
    };

  /** paletteLabel and label of a config node: its name, else `this[key]`, else its type's. */
  const configLabels = (type, key) => ({
    paletteLabel: paletteLabel(type),
    label: function () {
      return this.name || (key ? this[key] : '') || this._(`${type}.paletteLabel`);
    },
  });

  /** A flow node's labels: configLabels, italic when named, its ports' from the catalog. */
  const labels = (type, key) => ({
    ...configLabels(type, key),
    labelStyle: function () {
      return this.name ? 'node_label_italic' : '';
    },
    inputLabels: function () {
      return this._(`${type}.label.input`);
    },
    outputLabels: function (index) {
      const several = Number(this._def.outputs) > 1;
      return this._(several ? `${type}.label.output${index + 1}` : `${type}.label.output`);
    },
  });

  /** The `name` and `coordinator` of a flow node, a new object for each type. */
  const defaults = () => ({
    name: { value: '' },
    coordinator: { value: '', type: 'qe-coordinator', required: true },
  });

  /** A number field's default `value` and its check; a missing field (undefined) passes. */
  const number = (value, ok) => ({
    value,
    validate: (v, opt) =>
      v === undefined ||
      (RED.validators.number(true)(v, opt) === true &&
        (v === '' || /^\$\{/.test(String(v)) || ok(Number(v)))),
  });

  const attr = (s) =>
    String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

  /** The HTML of the row that `marker` (a parsed marker element) describes. */
  function row(type, prefix, marker) {
    const d = (k) => marker.attr(`data-${k}`);
    const prop = d('qe-row');
    const id = `${prefix}-${prop}`;
    const icon = d('icon') || { name: 'fa-tag', coordinator: 'fa-building' }[prop] || '';
    const width = d('width') ? ` style="width: ${attr(d('width'))};"` : '';
    const cls = d('class') ? ` ${attr(d('class'))}` : '';
    const style = d('style') ? ` style="${attr(d('style'))}"` : '';
    const label = `${type}.label.${d('label') || prop}`;
    const out = [
      `<div class="form-row${cls}"${style}>`,
      `  <label for="${id}"><i class="fa ${attr(icon)}"></i> <span data-i18n="${label}"></span></label>`,
    ];
    const input = d('input') || 'text';
    if (input === 'checkbox') {
      const text = `${type}.label.${d('text') || `${prop}Text`}`;
      out.push(
        `  <input type="checkbox" id="${id}" style="display: inline-block; width: auto; vertical-align: top;">`,
        `  <label for="${id}" style="width: 70%;" data-i18n="${text}"></label>`,
      );
    } else if (input === 'select') {
      out.push(`  <select id="${id}"${width}>`);
      for (const option of String(d('options') || '')
        .split(/\s+/)
        .filter(Boolean)) {
        const [value, key] = option.split('=');
        out.push(
          `    <option value="${attr(value)}" data-i18n="${type}.${prop}.${attr(key || value)}"></option>`,
        );
      }
      out.push('  </select>');
    } else {
      const placeholder =
        prop === 'name'
          ? ` data-i18n="[placeholder]${label}"`
          : marker.is('[data-placeholder]')
            ? ` data-i18n="[placeholder]${type}.placeholder.${prop}"`
            : '';
      const unit = d('unit') ? ` <span data-i18n="${type}.label.${attr(d('unit'))}"></span>` : '';
      out.push(`  <input type="${attr(input)}" id="${id}"${width}${placeholder}>${unit}`);
    }
    out.push('</div>');
    return out.join('\n');
  }

  /** Expands the row markers of the edit template of `type` (a registered type), once. */
  function form(type) {
    const script = $(`script[data-template-name="${type}"]`);
    if (script.length !== 1) {
      throw new Error(`QeNode.form: no single edit template for ${type} (found ${script.length})`);
    }
    const def = RED.nodes.getType(type);
    if (!def) throw new Error(`QeNode.form: ${type} is not registered yet`);
    const prefix = def.category === 'config' ? 'node-config-input' : 'node-input';
    // Every dialog opens with the name, then the coordinator of a node that has one.
    const first = ['name', ...(def.defaults?.coordinator ? ['coordinator'] : [])];
    const text = first.map((p) => `<div data-qe-row="${p}"></div>\n`).join('') + script.html();
    script.text(
      text.replace(/<div data-qe-row="[^"]*"[^>]*><\/div>/g, (m) => row(type, prefix, $(m))),
    );
  }

  window.QeNode = { labels, configLabels, defaults, number, form };
})();
