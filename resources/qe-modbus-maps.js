/*
 * The register maps of qe-modbus for its edit dialog, loaded from resources/ (no CDN) by
 * qe-modbus.html: the shipped maps and the core's map validator, from the runtime's admin
 * endpoint (nodes/lib/modbus-maps.ts): GET qe-modbus/maps, POST qe-modbus/maps/validate;
 * verdicts are kept by map text. The first load defines window.QeModbusMaps.
 */
(() => {
  if (window.QeModbusMaps) return;
  const RED = window.RED;

  /** Verdicts of the runtime's validator by map text: {valid, errors}. */
  const verdicts = new Map();
  const waiting = new Map();
  let shipped = null;
  const modbusMaps = {
    /** The shipped maps and profiles: a promise of {maps, profiles}. */
    get() {
      if (!shipped) {
        shipped = $.getJSON('qe-modbus/maps').then(
          (r) => r,
          (xhr) => {
            shipped = null;
            return $.Deferred().reject(
              new Error(`qe-modbus/maps: ${xhr.status} ${xhr.statusText}`),
            );
          },
        );
      }
      return shipped;
    },
    /** The runtime's verdict on a map's text, if it has given one. */
    known: (text) => verdicts.get(text),
    /** Asks the runtime to check a map's text; a promise of {valid, errors}. */
    check(text) {
      if (verdicts.has(text)) return $.Deferred().resolve(verdicts.get(text)).promise();
      if (waiting.has(text)) return waiting.get(text);
      const p = $.ajax({
        url: 'qe-modbus/maps/validate',
        method: 'POST',
        contentType: 'application/json',
        data: JSON.stringify({ map: text }),
        dataType: 'json',
      }).then(
        (v) => {
          waiting.delete(text);
          verdicts.set(text, v);
          return v;
        },
        (xhr) => {
          waiting.delete(text);
          return $.Deferred().reject(
            new Error(`qe-modbus/maps/validate: ${xhr.status} ${xhr.statusText}`),
          );
        },
      );
      waiting.set(text, p);
      return p;
    },
  };

  /** Re-validates `node` on the canvas (after an answer came that its `validate` waited for). */
  const revalidate = (node) => {
    if (!node || !RED?.editor?.validateNode) return;
    RED.editor.validateNode(node);
    RED.view?.redraw?.(true);
  };

  window.QeModbusMaps = { ...modbusMaps, revalidate };
})();
