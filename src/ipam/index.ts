export { Bitmap } from './bitmap.js';
export { subtractRanges } from './ranges.js';
export { openAddressBook, allocateAddress, releaseAddress, allocateVni, type AddressBook, type AllocationRequest } from './allocate.js';
