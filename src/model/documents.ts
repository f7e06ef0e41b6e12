import type { TSchema } from '@sinclair/typebox';
import { API_VERSIONS, APPLY_SPECS, type ApplyDocument, type ApplyKind } from './schemas.js';
import { NAMESPACE_NAME_LABEL } from './netpol.js';
import { MODE_ANNOTATION } from './netpol-schema.js';
import type { NamespaceObject, NetworkPolicyObject } from './objects.js';

/** What a schema lets through of `value`: an object's declared properties (recursively), an array's items. */
function pick(value: unknown, schema: TSchema): unknown {
  const s = schema as { type?: string; properties?: Record<string, TSchema>; items?: TSchema };
  if (s.type === 'object' && s.properties && value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, sub] of Object.entries(s.properties)) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = pick(v, sub);
    }
    return out;
  }
  if (s.type === 'array' && s.items && Array.isArray(value)) return value.map((v) => pick(v, s.items as TSchema));
  return value;
}

/**
 * A stored object as the document `weft apply -f` takes back: its spec is exactly what its kind's create
 * takes (server-chosen values such as a VNI or a VIP included, bookkeeping such as owners and revisions
 * left out), so applying what `weft get` printed changes nothing.
 */
export function documentOf(kind: ApplyKind, obj: { name: string; tenant?: string }): ApplyDocument {
  const tenant = obj.tenant !== undefined ? { tenant: obj.tenant } : {};
  // A Kubernetes policy's audit mode travels as an annotation (its spec is upstream's).
  const annotations = (obj as { mode?: string }).mode === 'audit' ? { annotations: { [MODE_ANNOTATION]: 'audit' } } : {};
  if (kind === 'NetworkPolicy') {
    const np = obj as NetworkPolicyObject;
    return { apiVersion: API_VERSIONS[kind], kind, metadata: { name: np.policyName, namespace: np.namespace, ...tenant, ...annotations }, spec: np.spec as Record<string, unknown> };
  }
  if (kind === 'Namespace') {
    // The name label is Kubernetes' (always there, never written): left out, as `kubectl get -o yaml` would show it applied.
    const { [NAMESPACE_NAME_LABEL]: _n, ...labels } = (obj as NamespaceObject).labels;
    return { apiVersion: API_VERSIONS[kind], kind, metadata: { name: obj.name, ...tenant, ...(Object.keys(labels).length > 0 ? { labels } : {}) } };
  }
  if (kind === 'AdminNetworkPolicy' || kind === 'BaselineAdminNetworkPolicy') {
    return { apiVersion: API_VERSIONS[kind], kind, metadata: { name: obj.name, ...tenant, ...annotations }, spec: (obj as unknown as { spec: Record<string, unknown> }).spec };
  }
  const spec = pick(obj, APPLY_SPECS[kind]) as Record<string, unknown>;
  return { apiVersion: 'weft/v1', kind, metadata: { name: obj.name, ...(kind !== 'Tenant' && obj.tenant !== undefined ? { tenant: obj.tenant } : {}) }, spec };
}
