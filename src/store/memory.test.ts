import { MemoryStore } from './memory.js';
import { storeContract } from './contract.js';

storeContract('memory', async (options) => new MemoryStore(options));
