import { AjvCompiler } from '@fastify/ajv-compiler';

type BuildCompiler = ReturnType<typeof AjvCompiler>;
type Compiler = ReturnType<BuildCompiler>;
type Validate = ReturnType<Compiler>;

/**
 * fastify's own validator factory (the same ajv and options it uses by default), except that a route's
 * schemas are compiled on the first request that needs them instead of all at start-up: compiling every
 * route's schemas cost ~0.35 s of CPU per start (issue 13), for routes most servers never see. A schema
 * that does not compile fails that route's first request with a 500 instead of the start;
 * validators.test.ts compiles every route's schemas, so such a schema fails the tests first.
 * `compiled` counts compilations, for that test.
 */
export function lazyValidators(build: BuildCompiler = AjvCompiler(), compiled = { count: 0 }): BuildCompiler {
  const lazyBuild = ((externalSchemas: unknown, options: unknown) => {
    const compile = (build as (e: unknown, o: unknown) => Compiler)(externalSchemas, options);
    return (route: Parameters<Compiler>[0]) => lazy(() => {
      compiled.count++;
      return compile(route);
    });
  }) as unknown as BuildCompiler;
  return lazyBuild;
}

/** A validator that compiles on first use and then behaves as the compiled one (result, `errors`, `schemaEnv`). */
function lazy(compileNow: () => Validate): Validate {
  let real: Validate | undefined;
  const get = () => (real ??= compileNow());
  const validate = function (this: unknown, ...args: unknown[]) {
    const v = get() as unknown as (...a: unknown[]) => unknown;
    const result = v.apply(this, args);
    (validate as { errors?: unknown }).errors = (v as { errors?: unknown }).errors;
    return result;
  };
  // fastify passes ajv's functions (they carry `schemaEnv`) the request as parent data, so a root value can be replaced.
  Object.defineProperty(validate, 'schemaEnv', { get: () => (get() as { schemaEnv?: unknown }).schemaEnv });
  return validate as unknown as Validate;
}
