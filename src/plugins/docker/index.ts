export { handleDocker, type DockerReply } from './handler.js';
export { serveDockerPlugin, type DockerPluginServer } from './server.js';
export { genericOptions, portMapOf, BadRequest, type DockerHost, type JoinResult, type CreateEndpoint, type CreateNetwork, type Join, type RequestAddress, type RequestPool, type ReleaseAddress } from './protocol.js';
