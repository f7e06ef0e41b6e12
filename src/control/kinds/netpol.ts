import {
  BANP_NAME, NAMESPACE_NAME_LABEL, adminWeight, checkAdminSpec, checkNetworkPolicySpec, invalid, netpolWeight, type PolicyMode,
  type AdminNetworkPolicyInput, type AdminNetworkPolicySpec, type AdminPolicyObject, type BaselineAdminNetworkPolicyInput, type BaselineAdminNetworkPolicySpec,
  type NamespaceInput, type NamespaceObject, type NetworkPolicyInput, type NetworkPolicyObject,
} from '../../model/index.js';
import type { KindDef } from '../crud.js';

/**
 * Kubernetes NetworkPolicies in a tenant (issue 15): what the schema cannot check is checked here (an
 * ipBlock's except inside its cidr, selector operators and their values, SCTP without ports), naming the
 * field under the document's spec. Nothing depends on one: deleting it is always allowed.
 */
export const networkPolicyKind: KindDef<NetworkPolicyInput, NetworkPolicyObject> = {
  collection: 'networkpolicies',
  async build(input, { tenant }) {
    if (input.name !== `${input.namespace}.${input.policyName}`) throw invalid('name', `must be ${input.namespace}.${input.policyName}`);
    checkNetworkPolicySpec(input.spec, '');
    return { tenant, name: input.name, namespace: input.namespace, policyName: input.policyName, spec: input.spec, weight: netpolWeight(input.spec), ...modeOf(input) };
  },
  async dependants() {
    return [];
  },
};

/** A namespace's labels; `kubernetes.io/metadata.name` is always its name (Kubernetes sets it the same way). */
export const namespaceKind: KindDef<NamespaceInput, NamespaceObject> = {
  collection: 'namespaces',
  async build(input, { tenant }) {
    const given = input.labels?.[NAMESPACE_NAME_LABEL];
    if (given !== undefined && given !== input.name) throw invalid(`labels.${NAMESPACE_NAME_LABEL}`, `is always the namespace's name (${input.name}); leave it out`);
    return { tenant, name: input.name, labels: { ...(input.labels ?? {}), [NAMESPACE_NAME_LABEL]: input.name } };
  },
  async dependants() {
    return [];
  },
};

/** The tenant's AdminNetworkPolicies: what the schema cannot check is checked here, naming the field. */
export const adminNetworkPolicyKind: KindDef<AdminNetworkPolicyInput, AdminPolicyObject<AdminNetworkPolicySpec>> = {
  collection: 'adminnetworkpolicies',
  async build(input, { tenant }) {
    checkAdminSpec(input.spec);
    return { tenant, name: input.name, spec: input.spec, weight: adminWeight(input.spec), ...modeOf(input) };
  },
  async dependants() {
    return [];
  },
};

/** The tenant's one BaselineAdminNetworkPolicy, named `default` as upstream requires. */
export const baselineAdminNetworkPolicyKind: KindDef<BaselineAdminNetworkPolicyInput, AdminPolicyObject<BaselineAdminNetworkPolicySpec>> = {
  collection: 'baselineadminnetworkpolicies',
  async build(input, { tenant }) {
    if (input.name !== BANP_NAME) throw invalid('name', `a BaselineAdminNetworkPolicy is named ${BANP_NAME} (there is one per tenant), not ${input.name}`);
    checkAdminSpec(input.spec);
    return { tenant, name: input.name, spec: input.spec, weight: adminWeight(input.spec), ...modeOf(input) };
  },
  async dependants() {
    return [];
  },
};

/** Audit mode is stored; enforce (the default) is left out, so an object applied either way reads the same. */
function modeOf(input: { mode?: PolicyMode | undefined }): { mode?: 'audit' } {
  return input.mode === 'audit' ? { mode: 'audit' } : {};
}
