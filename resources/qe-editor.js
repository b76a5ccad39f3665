/*
 * Editor code shared by the package's edit dialogs, loaded from resources/ (no CDN):
 *
 * - QeEditor.table(node, spec): an editable table (one row per battery, per charger) built on
 *   Node-RED's editableList, with a header, a first line of fields and a "more" box; each
 *   row is read into the object that the node keeps (spec.read), and checked by the node's
 *   own rule (spec.problems), the same function that the node's `validate` runs on the kept
 *   list, so a rule is written once. QeEditor.saveTable and QeEditor.resizeTable are
 *   oneditsave and oneditresize for it, QeEditor.tableLabel the node's label.
 * - QeEditor.num, QeEditor.blank, QeEditor.rowsOk: the pieces of those rules.
 * - QeEditor.schedule: the schedule fields that qe-schedule and qe-fleet share (asset map,
 *   rated kW, time zone, unmapped columns, limit column): their defaults and their rows.
 * - QeEditor.events: the event types of the core (src/event-bus.ts EventType, in its order;
 *   the browser test checks it) and the checklist that qe-events and qe-fleet pick them in.
 * - QeEditor.labels(type, key): paletteLabel, label (the name, else `this[key]`, else the
 *   palette label), labelStyle, and the ports' labels (`<type>.label.input`, `.output`, or
 *   `.output1`, `.output2`... on several outputs) from the i18n catalog; configLabels(type,
 *   key) the first two, for a config node. QeEditor.defaults(): `name` and `coordinator` of
 *   a flow node; configDefaults(): the `name` of a config node.
 * - QeEditor.number(value, ok): a number field: blank, an env var `${...}`, or a number that
 *   RED.validators.number accepts and `ok` passes.
 * - QeEditor.form(type): the rows of the node's edit template, built once when the .html
 *   registers the type (after registerType): Node-RED copies the template's text into the
 *   dialog each time it opens, and binds `node-input-<prop>` (`node-config-input-<prop>`)
 *   before oneditprepare, so the rows must be in that text. Node-RED appends a node's .html
 *   whole (jQuery inserts the elements, then runs the scripts), so the template is there.
 *   Every dialog opens with the `name` row, then `coordinator` on a node that has one; the
 *   template's other rows are one-line markers, `<div data-qe-row="<prop>" ...></div>`:
 *   data-icon="fa-..."; data-width="70%" (the input's); data-placeholder (the text
 *   `<type>.placeholder.<prop>`); data-unit="seconds" (`<type>.label.<unit>` after the
 *   input); data-input="password", "checkbox" (text `<type>.label.<data-text, else
 *   <prop>Text>`) or "select" (data-options="a b c=k": values shown as `<type>.<prop>.<k or
 *   value>`); data-label (the label's key when not <prop>); data-class, data-style (the
 *   row's). The ids and i18n keys are those of the rows written out before.
 *
 * Loaded by every nodes/<type>/<type>.html before its own script (qe-modbus.html also loads
 * qe-modbus-maps.js); the first load defines window.QeEditor.
 */
(() => {
  if (window.QeEditor) return;
  const RED = window.RED;

  /** Empty as a form field: undefined, null or ''. */
  const blank = (x) => x === undefined || x === null || x === '';
  /** A number field: blank (allowed unless `required`), or a number that `ok` accepts. */
  const num = (x, ok, required) =>
    blank(x) ? !required : Number.isFinite(Number(x)) && ok(Number(x));
  const show = (x) => (x === undefined || x === null ? '' : String(x));
  /** A field's text as typed: a number as a number, anything else as typed (for the rules to flag). */
  const typed = (s) => (Number.isFinite(Number(s)) ? Number(s) : s);

  /** True when `list` is a non-empty array and no item has a problem. */
  const rowsOk = (list, problems) =>
    Array.isArray(list) &&
    list.length > 0 &&
    list.every((item) => !!item && typeof item === 'object' && problems(item, list).length === 0);

  /** How many of `items` have `key` equal (trimmed) to `item`'s: > 1 is a duplicate. */
  const twice = (items, item, key) => {
    const v = String(item[key] ?? '').trim();
    return v !== '' && items.filter((o) => String(o?.[key] ?? '').trim() === v).length > 1;
  };

  /** The builders a table row uses, for the node's `prefix` (CSS class and i18n namespace). */
  function rowUi(t, prefix) {
    const field = (key, width, value) =>
      $('<input/>', {
        type: 'text',
        class: `${prefix}-${key}`,
        placeholder: t(`placeholder.${key}`),
        title: t(`label.${key}`),
        style: `width: ${width};`,
      }).val(show(value));
    const select = (key, values, width, value) => {
      const s = $('<select/>', {
        class: `${prefix}-${key}`,
        title: t(`label.${key}`),
        style: `width: ${width};`,
      });
      for (const v of values)
        $('<option/>', { value: v })
          .text(t(`${key}.${v}`))
          .appendTo(s);
      return s.val(values.includes(value) ? value : values[0]);
    };
    const small = (key, input) =>
      $('<label/>', { style: 'width: auto; margin: 0 4px 0 0; font-size: 12px;' })
        .text(t(`label.${key}`))
        .add(input);
    const group = (parent, cls) =>
      $('<div/>', {
        class: cls || '',
        style:
          'display: flex; flex-wrap: wrap; gap: 4px 12px; align-items: center; margin-bottom: 4px;',
      }).appendTo(parent);
    return { field, select, small, group, show };
  }

  /**
   * An editable table in the list `spec.list` for `node`:
   * - spec.prefix: the node type (CSS classes `<prefix>-<key>`, i18n `<prefix>.label.<key>`);
   * - spec.columns: [[key, width], ...], the fields of a row's first line, with the header;
   * - spec.build(ui, data, line1, details): adds the row's other fields (`ui` has field,
   *   select, small, group; `details` is the box that the caret opens);
   * - spec.read(row): the object kept for a row; spec.empty(item): a row left out on save;
   * - spec.problems(item, items): the keys of the fields that are wrong (the node's rule);
   * - spec.after(row, item, open): optional, after each check (show or hide fields);
   * - spec.items: the rows to start with; spec.blankItem: the one row of a new node.
   */
  function table(node, spec) {
    const t = (key) => node._(`${spec.prefix}.${key}`);
    const ui = rowUi(t, spec.prefix);
    const list = $(spec.list);
    const header = $('<div/>', { style: 'display: flex; gap: 6px; padding: 4px 28px 4px 34px;' });
    for (const [key, w] of spec.columns) {
      $('<span/>', { style: `width: ${w}; font-size: 12px;` })
        .text(t(`label.${key}`))
        .appendTo(header);
    }
    const readAll = () =>
      list
        .editableList('items')
        .toArray()
        .map((r) => spec.read($(r)));
    const check = (row, items) => {
      const item = spec.read(row);
      const wrong = new Set(spec.problems(item, items));
      row.find(`[class^="${spec.prefix}-"], [class*=" ${spec.prefix}-"]`).each(function () {
        const el = $(this);
        if (!el.is('input, select, textarea')) return;
        const key = (this.className.match(new RegExp(`${spec.prefix}-([\\w-]+)`)) || [])[1];
        el.toggleClass('input-error', wrong.has(key));
      });
      if (spec.after) spec.after(row, item, wrong);
      // Open the details of a row that needs something there.
      if (row.find(`.${spec.prefix}-details .input-error`).length > 0) row.data('open')(true);
    };
    const checkAll = () => {
      const items = readAll();
      list.editableList('items').each(function () {
        check($(this), items);
      });
    };
    list
      .css('min-height', '150px')
      .css('min-width', spec.minWidth || '450px')
      .editableList({
        header,
        sortable: true,
        removable: true,
        addButton: true,
        addItem: (row, _index, data) => {
          const item = data && typeof data === 'object' ? data : {};
          const line1 = $('<div/>', {
            style: 'display: flex; gap: 6px; align-items: center;',
          }).appendTo(row);
          const details = $('<div/>', {
            class: `${spec.prefix}-details`,
            style: 'margin-top: 6px; display: none;',
          });
          spec.build(ui, item, line1, details);
          const more = $('<a/>', {
            href: '#',
            class: `red-ui-button red-ui-button-small ${spec.prefix}-more`,
            title: t('label.more'),
          })
            .append($('<i/>', { class: 'fa fa-caret-down' }))
            .appendTo(line1);
          details.appendTo(row);
          // Not :visible, which is false while the dialog is still being built.
          const open = (yes) => {
            details.css('display', yes ? 'block' : 'none');
            more.find('i').toggleClass('fa-caret-down', !yes).toggleClass('fa-caret-up', yes);
          };
          row.data('open', open);
          row.data('checkAll', checkAll);
          more.on('click', (e) => {
            e.preventDefault();
            open(details.css('display') === 'none');
          });
          row.find('input, select, textarea').on('change keyup', () => checkAll());
          check(row, readAll());
        },
        removeItem: () => checkAll(),
      });
    const items = Array.isArray(spec.items) ? spec.items : [];
    for (const item of items) list.editableList('addItem', item);
    if (items.length === 0) list.editableList('addItem', spec.blankItem || {});
    checkAll();
    return { checkAll, t };
  }

  /** A table node's label: its name, else the first column of up to 3 rows, else its type's. */
  function tableLabel(node, rows, key) {
    if (node.name) return node.name;
    const ids = Array.isArray(rows) ? [...new Set(rows.map((r) => r?.[key]).filter(Boolean))] : [];
    return ids.length > 0 && ids.length <= 3 ? ids.join(', ') : node._(`${node.type}.paletteLabel`);
  }

  /** oneditsave of a table: the rows as `read` keeps them, less those that `empty` leaves out. */
  function saveTable(listSelector, read, empty) {
    const out = [];
    $(listSelector)
      .editableList('items')
      .each(function () {
        const item = read($(this));
        if (!empty(item)) out.push(item);
      });
    return out;
  }

  /** oneditresize of a dialog whose last row (`rowClass`) holds the table `listSelector`. */
  function resizeTable(size, rowClass, listSelector) {
    const rows = $(`#dialog-form>div:not(.${rowClass})`);
    let height = size.height;
    for (let i = 0; i < rows.length; i++) height -= $(rows[i]).outerHeight(true);
    const row = $(`#dialog-form>div.${rowClass}`);
    height -= parseInt(row.css('marginTop'), 10) + parseInt(row.css('marginBottom'), 10);
    height += 16;
    $(listSelector).editableList('height', height);
  }

  // ---- The schedule fields of qe-schedule and qe-fleet ----

  /** Empty, or the JSON text of an object (assetMap and ratedKw alike). */
  const jsonObject = (v) => {
    if (v === '' || v === undefined) return true;
    try {
      const o = JSON.parse(v);
      return o !== null && typeof o === 'object' && !Array.isArray(o);
    } catch {
      return false;
    }
  };
  /** Empty, or a time zone that this browser knows (IANA name). */
  const timeZone = (v) => {
    if (v === '' || v === undefined) return true;
    try {
      new Intl.DateTimeFormat('en-US', { timeZone: String(v).trim() });
      return true;
    } catch {
      return false;
    }
  };
  const schedule = {
    jsonObject,
    timeZone,
    /** The shared fields' `defaults`, a new object for each node type. */
    defaults: () => ({
      assetMap: { value: '{}', validate: jsonObject },
      ratedKw: { value: '{}', validate: jsonObject },
      timeZone: { value: 'UTC', validate: timeZone },
      ignoreUnmapped: { value: false },
      limitColumn: { value: '' },
    }),
    /**
     * Adds the shared rows, filled from `node`, to `container` (in oneditprepare). Their ids
     * are node-input-<field>, so the editor saves them as it saves the template's own.
     */
    prepare(node, container) {
      const t = (key) => node._(`${node.type}.${key}`);
      const box = $(container);
      const row = (key, icon) => {
        const r = $('<div/>', { class: 'form-row' }).appendTo(box);
        $('<label/>', { for: `node-input-${key}` })
          .append($('<i/>', { class: `fa ${icon}` }))
          .append($('<span/>').text(` ${t(`label.${key}`)}`))
          .appendTo(r);
        return r;
      };
      const text = (key, icon, placeholder) =>
        $('<input/>', {
          type: 'text',
          id: `node-input-${key}`,
          style: 'width: 70%;',
          placeholder: placeholder ? t(`placeholder.${key}`) : '',
        })
          .val(show(node[key]))
          .appendTo(row(key, icon));
      const assetMap = text('assetMap', 'fa-exchange');
      $('<div/>', { class: 'form-tips' }).html(t('tip.assetMap')).appendTo(box);
      const ratedKw = text('ratedKw', 'fa-bolt');
      ratedKw.closest('.form-row').css('margin-top', '12px');
      const zone = text('timeZone', 'fa-globe', true);
      const unmapped = row('ignoreUnmapped', 'fa-filter');
      $('<input/>', {
        type: 'checkbox',
        id: 'node-input-ignoreUnmapped',
        style: 'display: inline-block; width: auto; vertical-align: top;',
      })
        .prop('checked', node.ignoreUnmapped === true)
        .appendTo(unmapped);
      $('<label/>', { for: 'node-input-ignoreUnmapped', style: 'width: 70%;' })
        .text(t('label.ignoreUnmappedText'))
        .appendTo(unmapped);
      text('limitColumn', 'fa-compress', true);
      for (const [input, ok] of [
        [assetMap, jsonObject],
        [ratedKw, jsonObject],
        [zone, timeZone],
      ]) {
        const mark = () => input.toggleClass('input-error', !ok(input.val()));
        input.on('change keyup', mark);
        mark();
      }
      assetMap.typedInput({ type: 'json', types: ['json'] });
      ratedKw.typedInput({ type: 'json', types: ['json'] });
    },
  };

  // ---- The event types that qe-events and qe-fleet pick ----

  const EVENT_TYPES = [
    'COMMAND_CREATED',
    'COMMAND_DISPATCHED',
    'COMMAND_ACKNOWLEDGED',
    'COMMAND_COMPLETED',
    'COMMAND_FAILED',
    'COMMAND_TIMED_OUT',
    'COMMAND_CANCELLED',
    'STATE_CHANGED',
    'SCHEDULE_RECEIVED',
    'ASSET_DEVIATION',
    'ASSET_COMPLIANT',
    'SETPOINT_LIMITED',
    'LIMITS_CHANGED',
    'OPTIMISER_SILENT',
  ];
  const events = {
    /** All event types, a new array each time (a node's default may keep it). */
    all: () => EVENT_TYPES.slice(),
    /** A kept list: an array, or the names in a string (comma or space separated). */
    listOf: (v) =>
      Array.isArray(v)
        ? v
        : String(v || '')
            .split(/[,\s]+/)
            .filter(Boolean),
    /** True when every name in `v` is an event type. */
    known: (v) => events.listOf(v).every((t) => EVENT_TYPES.includes(t)),
    /** A checkbox per event type in `container`, ticked for those in `current`. */
    checklist(container, current) {
      const list = $(container);
      for (const t of EVENT_TYPES) {
        const row = $('<label/>', {
          style: 'display: block; width: auto; margin: 0 0 2px 0; cursor: pointer;',
        }).appendTo(list);
        $('<input/>', {
          type: 'checkbox',
          value: t,
          style: 'display: inline-block; width: auto; margin: 0 8px 2px 0; vertical-align: middle;',
        })
          .prop('checked', current.includes(t))
          .appendTo(row);
        $('<code/>').text(t).appendTo(row);
      }
      return list;
    },
    /** The ticked event types of a checklist, in the core's order. */
    checked: (container) =>
      $(container)
        .find('input[type=checkbox]')
        .toArray()
        .filter((el) => el.checked)
        .map((el) => el.value),
  };

  // ---- What every node's definition and dialog share ----

  /** paletteLabel and label of a config node: its name, else `this[key]`, else its type's. */
  const configLabels = (type, key) => ({
    paletteLabel: function () {
      return this._(`${type}.paletteLabel`);
    },
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

  /** The `name` of a config node, a new object for each type. */
  const configDefaults = () => ({ name: { value: '' } });
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

  const attr = (s) => String(s).replace(/&/g, '&amp;').replace(/"/g, '&quot;');

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
      throw new Error(
        `QeEditor.form: no single edit template for ${type} (found ${script.length})`,
      );
    }
    const def = RED.nodes.getType(type);
    if (!def) throw new Error(`QeEditor.form: ${type} is not registered yet`);
    const prefix = def.category === 'config' ? 'node-config-input' : 'node-input';
    // Every dialog opens with the name, then the coordinator of a node that has one.
    const first = ['name', ...(def.defaults?.coordinator ? ['coordinator'] : [])];
    const text = first.map((p) => `<div data-qe-row="${p}"></div>\n`).join('') + script.html();
    script.text(
      text.replace(/<div data-qe-row="[^"]*"[^>]*><\/div>/g, (m) => row(type, prefix, $(m))),
    );
  }

  window.QeEditor = {
    blank,
    num,
    show,
    typed,
    twice,
    rowsOk,
    table,
    tableLabel,
    saveTable,
    resizeTable,
    schedule,
    events,
    labels,
    configLabels,
    defaults,
    configDefaults,
    number,
    form,
  };
})();
