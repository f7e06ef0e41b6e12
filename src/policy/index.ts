export { compilePolicy, groupRules, type CompiledPolicy, type PolicyState, type PortEntry, type ProtoEntry, type Verdict } from './compile.js';
export { explainFlow, type Explanation } from './explain.js';
export { classify, type Klass, type Classification } from './classes.js';
export { decide, type Decision, type RuleRef } from './decide.js';
