export { compilePolicy, filters, groupRules, lookups, lookupVerdict, type CompiledPolicy, type PolicyState, type Slot, type Verdict } from './compile.js';
export type { SideEntry, SideProfile } from './sides.js';
export type { PairProfiles, Profile } from './pairs.js';
export type { Segment } from './segments.js';
export { explainFlow, explainer, type Explainer, type Explanation, type FullExplanation } from './explain.js';
export { classify, type Klass, type Classification } from './classes.js';
export { decide, layerOf, protocolNumber, type Decision, type RuleRef } from './decide.js';
export type { NetpolInput } from './netpol.js';
export { verdictChanges, type VerdictChange } from './diff.js';
