s/proto\.Marshal(m\.Message)/marshalRaftMessage(m.Message)/
s/proto\.Size(m\.Message)/sizeRaftMessage(m.Message)/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.Message)/mergeRaftMessage(dAtA[iNdEx:postIndex], m.Message)/
s/proto\.Marshal(m\.Entries\[iNdEx\])/marshalRaftEntry(m.Entries[iNdEx])/
s/l = proto\.Size(e)$/l = sizeRaftEntry(e)/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.Entries\[len(m\.Entries)-1\])/unmarshalRaftEntry(dAtA[iNdEx:postIndex], m.Entries[len(m.Entries)-1])/
s/proto\.Unmarshal(dAtA\[iNdEx:postIndex\], m\.\(HardState\|ConfState\))/(proto.UnmarshalOptions{Merge: true}).Unmarshal(dAtA[iNdEx:postIndex], m.\1)/
s/proto\.Marshal(m\.HardState)/marshalHardState(m.HardState)/
s/l = proto\.Size(m\.HardState)$/l = sizeHardState(m.HardState)/
s/encoded, err := marshalRaftMessage(m\.Message)$/encoded, err := marshalRaftMessageAt(dAtA[:i], m.Message)/
s/encoded, err := marshalRaftEntry(m\.Entries\[iNdEx\])$/encoded, err := marshalRaftEntryAt(dAtA[:i], m.Entries[iNdEx])/
s/encoded, err := marshalHardState(m\.HardState)$/encoded, err := marshalHardStateAt(dAtA[:i], m.HardState)/
