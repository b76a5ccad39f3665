/**
 * Commands, as one import: the model and its lifecycle (command-model.ts), creation and
 * validation of hand-made or restored commands (command-create.ts), and the JSON form
 * (command-json.ts). Code outside these three files imports from here.
 */

export {
  type CommandDefaults,
  type CommandInput,
  CommandValidationError,
  createCommand,
  describe,
  InternCache,
} from './command-create';
export {
  type CommandJSON,
  commandFromJSON,
  commandToJSON,
  isoString,
  isoTime,
} from './command-json';
export {
  type Command,
  type CommandHistoryEntry,
  type CommandSource,
  CommandStatus,
  CommandType,
  canTransition,
  FINAL_STATUSES,
  HISTORY_LIMIT,
  InvalidCommandTransition,
  isFinal,
  MAX_POWER_KW,
  MAX_TIMEOUT_SECONDS,
  transition,
} from './command-model';
