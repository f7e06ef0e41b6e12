// What the client verbs take from `model`, from its plain files. model/index.js also builds every TypeBox
// schema (~200 modules of @sinclair/typebox), which no client verb needs: the server validates. This is the
// one place the CLI reaches past model's index; these files import nothing of TypeBox (startup.test.ts
// fails if that changes). Verbs that need model's schema-side helpers load `durations.ts`.
export { isWeftError } from '../model/errors.js';
export { ENCAPS, ENCRYPTIONS } from '../model/objects.js';
export { parseLabelList } from '../model/validate.js';
export type { WireguardStatus } from '../model/objects.js';
