export { Bitmap } from './bitmap.js';
export { subtractRanges } from './ranges.js';
export { AddressBook, CHUNK_SIZE, type ChunkLoader } from './book.js';
export { openAddressBook, allocateAddress, releaseAddress, allocateVni, type AllocationRequest } from './allocate.js';
export { AddressBook6, openAddressBook6, allocateAddress6, releaseAddress6, encodeRuns, decodeRuns, type ChunkLoader6, type Runs } from './book6.js';
