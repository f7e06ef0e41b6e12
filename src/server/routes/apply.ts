import type { FastifyInstance } from 'fastify';
import { AjvCompiler } from '@fastify/ajv-compiler';
import { APPLY_SPECS, ApplyInput, WeftError, type ApplyDocument, type ApplyKind } from '../../model/index.js';
import { requireRole, requireTenantAccess, type ApplyDoc, type ApplyOutcome } from '../../control/index.js';
import { principalOf } from '../context.js';
import { fromValidation, type AjvError } from '../problem.js';

type Validate = ((data: unknown) => boolean) & { errors?: AjvError[] | null };

/** Each kind's spec validator, compiled on first use with the server's own ajv options (unknown fields are errors). */
const validators = new Map<ApplyKind, Validate>();
let compile: ((route: { schema: object }) => Validate) | undefined;

function specValidator(kind: ApplyKind): Validate {
  let v = validators.get(kind);
  if (!v) {
    compile ??= AjvCompiler()({}, { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } }) as unknown as (route: { schema: object }) => Validate;
    v = compile({ schema: APPLY_SPECS[kind] });
    validators.set(kind, v);
  }
  return v;
}

/** A document as control's apply takes it: its spec checked against its kind's schema, its tenant resolved. */
function docOf(d: ApplyDocument, index: number, defaultTenant: string): ApplyDoc {
  const spec = d.spec ?? {};
  const validate = specValidator(d.kind);
  if (!validate(spec)) {
    const e = fromValidation(validate.errors ?? [], 'body', `documents.${index}.spec`);
    throw new WeftError(e.code, `documents.${index} (${d.kind} ${d.metadata.name}): ${e.message}`, e.field !== undefined ? { field: e.field } : {});
  }
  if (d.kind === 'Tenant' && d.metadata.tenant !== undefined) {
    throw new WeftError('WEFT_INVALID_FIELD', `documents.${index}.metadata.tenant: a Tenant is not inside a tenant; name it in metadata.name`, { field: `documents.${index}.metadata.tenant` });
  }
  const tenant = d.kind === 'Tenant' ? d.metadata.name : d.metadata.tenant ?? defaultTenant;
  return { index, kind: d.kind, tenant, input: { ...spec, name: d.metadata.name } } as ApplyDoc;
}

export function applyRoutes(app: FastifyInstance): void {
  app.post<{ Body: ApplyInput }>('/api/v1/apply', {
    schema: {
      body: ApplyInput, tags: ['apply'],
      summary: 'Create, replace or delete many objects in one transaction (`weft apply -f`, `weft delete -f`)',
      description: 'Each document is a whole object (what it leaves out is unset or its default); objects that would not change are not written. Written in dependency order; all or nothing.',
    },
  }, async (req): Promise<ApplyOutcome> => {
    const p = principalOf(req);
    requireRole(p, ['admin', 'ops', 'tenant'], 'apply documents');
    const docs = req.body.documents.map((d, i) => docOf(d, i, req.body.tenant ?? 'default'));
    for (const d of docs) {
      try {
        requireTenantAccess(p, d.tenant);
      } catch (e) {
        if (e instanceof WeftError) throw new WeftError(e.code, `documents.${d.index}: ${e.message}`, { field: `documents.${d.index}.metadata.${d.kind === 'Tenant' ? 'name' : 'tenant'}` });
        throw e;
      }
    }
    return app.control.apply(p.user, docs, { dryRun: req.body.dryRun === true, remove: req.body.delete === true, mayManageTenants: p.role === 'admin' || p.role === 'ops' });
  });
}
