export { defaultConfig, readConfig, parseConfig, matchEndpoint, ConfigError, BUILTIN_WEFT, type ProxyConfig } from './config.js';
export { startDockerProxy, type ProxyOptions, type RunningProxy } from './proxy.js';
export { parseListen, parseUpstream, ListenError, type ListenAddress } from './listen.js';
export { dockerNetworkName, targetOf } from './weft-adapter.js';
